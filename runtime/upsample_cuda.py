"""CUDA bilinear upsampling + softmax/argmax: runtime/kernels/bilinear_softmax.cu compiled at run time with NVRTC
(through cuda-python), cached on disk by source hash and GPU architecture, launched through the driver API.

No build step on the target: the first use on a GPU compiles the kernels (about a second) and writes
``$DEEPLAB_CACHE_DIR`` (default ``~/.cache/deeplab-deploy``) ``/kernels/<hash>-sm_XY.cubin``; later runs load that file.
"""
from __future__ import annotations

import contextlib
import ctypes
import hashlib
import os
import threading
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from runtime.atomic import atomic_write_bytes
from runtime.backends.base import DeviceLogits
from runtime.cuda_util import CudaError, check, cuda_modules

KERNEL_SOURCE = Path(__file__).resolve().parent / "kernels" / "bilinear_softmax.cu"
KERNELS = {
    "bilinear": "deeplab_bilinear",
    "bilinear_softmax": "deeplab_bilinear_softmax",
    "bilinear_argmax_u8": "deeplab_bilinear_argmax_u8",
    "bilinear_argmax_i32": "deeplab_bilinear_argmax_i32",
}
BLOCK = (32, 8, 1)


class NvrtcUnavailable(RuntimeError):
    """cuda-python or libnvrtc is not installed."""


def choose_target(capability: tuple[int, int], supported: Sequence[int]) -> tuple[int, bool]:
    """``(arch, cubin)``: a cubin for the GPU's own architecture when this NVRTC supports it, else PTX for the newest
    supported architecture below it (the driver JIT-compiles PTX for newer GPUs)."""
    arch = capability[0] * 10 + capability[1]
    if arch in supported:
        return arch, True
    older = [a for a in supported if a <= arch]
    if not older:
        raise CudaError(f"this NVRTC supports sm_{min(supported)}..sm_{max(supported)}, not the GPU's sm_{arch}")
    return max(older), False


def _nvrtc():
    try:
        _, _, nvrtc = cuda_modules()
        check(nvrtc.nvrtcVersion(), "nvrtcVersion")
    except ImportError as e:
        raise NvrtcUnavailable(f"cuda-python is not installed ({e})") from None
    except Exception as e:  # noqa: BLE001 - libnvrtc missing: cuda-pathfinder raises its own error type
        raise NvrtcUnavailable(f"libnvrtc is not available: {e}") from None
    return nvrtc


def compile_kernels(source: str, capability: tuple[int, int], cubin: bool = True) -> bytes:
    """Compile ``source`` with NVRTC for a GPU of ``capability``: a cubin (``cubin=True`` and supported) or PTX."""
    nvrtc = _nvrtc()
    supported = check(nvrtc.nvrtcGetSupportedArchs(), "nvrtcGetSupportedArchs")
    arch, as_cubin = choose_target(capability, list(supported))
    as_cubin = as_cubin and cubin
    prog = check(nvrtc.nvrtcCreateProgram(source.encode(), b"bilinear_softmax.cu", 0, [], []), "nvrtcCreateProgram")
    try:
        opts = [f"--gpu-architecture={'sm' if as_cubin else 'compute'}_{arch}".encode(), b"--std=c++17"]
        result = nvrtc.nvrtcCompileProgram(prog, len(opts), opts)
        if int(result[0]) != 0:
            size = check(nvrtc.nvrtcGetProgramLogSize(prog), "nvrtcGetProgramLogSize")
            log = b" " * size
            check(nvrtc.nvrtcGetProgramLog(prog, log), "nvrtcGetProgramLog")
            raise CudaError(f"NVRTC could not compile {KERNEL_SOURCE.name}: {log.decode(errors='replace').strip()}")
        get_size, get = ((nvrtc.nvrtcGetCUBINSize, nvrtc.nvrtcGetCUBIN) if as_cubin
                         else (nvrtc.nvrtcGetPTXSize, nvrtc.nvrtcGetPTX))
        out = b" " * check(get_size(prog), "nvrtc size")
        check(get(prog, out), "nvrtc get")
        return out
    finally:
        nvrtc.nvrtcDestroyProgram(prog)


def cache_dir() -> Path:
    xdg = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    base = os.environ.get("DEEPLAB_CACHE_DIR") or xdg / "deeplab-deploy"
    return Path(base) / "kernels"


def cached_kernels(capability: tuple[int, int], source_path: Path = KERNEL_SOURCE) -> bytes:
    """The compiled kernels for ``capability``, from the disk cache or compiled now and cached (atomic write)."""
    source = source_path.read_text()
    nvrtc = _nvrtc()
    version = check(nvrtc.nvrtcVersion(), "nvrtcVersion")
    key = hashlib.sha256(f"{source}\0{version}".encode()).hexdigest()[:16]
    path = cache_dir() / f"{key}-sm_{capability[0]}{capability[1]}.bin"
    if path.is_file():
        return path.read_bytes()
    binary = compile_kernels(source, capability)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, binary)
    except OSError:
        pass  # a read-only cache only costs a recompilation next time
    return binary


def _params(*args: tuple[int, type]) -> tuple[np.ndarray, list[np.ndarray]]:
    """cuLaunchKernel's ``void**``: an array of pointers to each argument's value (kept alive by the caller)."""
    values = [np.array([v], dtype=np.uint64 if t is ctypes.c_void_p else np.int32) for v, t in args]
    ptrs = np.array([v.ctypes.data for v in values], dtype=np.uint64)
    return ptrs, values


class CudaUpsampler:
    """The kernels loaded on one GPU (its primary context, pushed around every call and popped after, so the calling
    thread's current device is left as it was). ``run`` takes and returns host arrays; ``run_device`` takes logits
    already on this GPU (a :class:`DeviceLogits`, e.g. from ``TensorRTBackend.infer_device``) and returns host
    results. Calls are serialized by a lock (one stream)."""

    def __init__(self, device: int = 0) -> None:
        driver, _, _ = cuda_modules()
        self._driver = driver
        self.device = int(device)
        check(driver.cuInit(0), "cuInit")
        self._device = check(driver.cuDeviceGet(self.device), "cuDeviceGet")
        self._context = check(driver.cuDevicePrimaryCtxRetain(self._device), "cuDevicePrimaryCtxRetain")
        self._buffers: dict[str, tuple[int, int]] = {}  # name -> (device pointer, bytes), grown on demand
        self._lock = threading.Lock()
        self._module = self.stream = None
        with self._current():
            attr = driver.CUdevice_attribute
            capability = tuple(int(check(driver.cuDeviceGetAttribute(a, self._device), "cuDeviceGetAttribute"))
                               for a in (attr.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR,
                                         attr.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR))
            self._module = check(driver.cuModuleLoadData(cached_kernels(capability)), "cuModuleLoadData")
            self._functions = {op: check(driver.cuModuleGetFunction(self._module, name.encode()),
                                         f"cuModuleGetFunction({name})") for op, name in KERNELS.items()}
            self.stream = check(driver.cuStreamCreate(0), "cuStreamCreate")
            self._probe()

    @contextlib.contextmanager
    def _current(self) -> Iterator[None]:
        check(self._driver.cuCtxPushCurrent(self._context), "cuCtxPushCurrent")
        try:
            yield
        finally:
            check(self._driver.cuCtxPopCurrent(), "cuCtxPopCurrent")

    def _probe(self) -> None:
        """Run each kernel once on a tiny input: a module that loads but cannot run here (a kernel image for another
        GPU, a broken driver JIT) fails now, not on the first frame."""
        x = np.linspace(-2, 2, 2 * 3 * 3, dtype=np.float32).reshape(1, 2, 3, 3)
        results = {op: self._run_host(op, x, (5, 5), (4, 5), False) for op in KERNELS}
        probs = results["bilinear_softmax"]
        if not (np.isfinite(results["bilinear"]).all() and np.allclose(probs.sum(axis=1), 1, atol=1e-4)
                and (results["bilinear_argmax_u8"] == probs.argmax(axis=1)).all()
                and (results["bilinear_argmax_i32"] == probs.argmax(axis=1)).all()):
            raise CudaError(f"the upsampling kernels give wrong results on GPU {self.device}")

    def launch(self, op: str, d_in: int, d_out: int, shape: tuple[int, int, int, int], size: tuple[int, int],
               crop: tuple[int, int], align_corners: bool, stream=None) -> None:
        """Enqueue kernel ``op`` on device pointers: d_in N×C×h×w float32 → d_out (N×C×crop or N×crop). The caller
        holds this GPU's context current."""
        n, c, h, w = shape
        params, keep = _params((int(d_in), ctypes.c_void_p), (int(d_out), ctypes.c_void_p), (c, int), (h, int),
                               (w, int), (size[0], int), (size[1], int), (crop[0], int), (crop[1], int),
                               (int(align_corners), int))
        grid = (-(-crop[1] // BLOCK[0]), -(-crop[0] // BLOCK[1]), n)
        check(self._driver.cuLaunchKernel(self._functions[op], *grid, *BLOCK, 0, stream or self.stream,
                                          params.ctypes.data, 0), f"cuLaunchKernel({KERNELS[op]})")
        del keep

    def _buffer(self, name: str, nbytes: int) -> int:
        ptr, size = self._buffers.get(name, (0, 0))
        if size < nbytes:
            if ptr:
                check(self._driver.cuMemFree(ptr), "cuMemFree")
            ptr = int(check(self._driver.cuMemAlloc(nbytes), "cuMemAlloc"))
            self._buffers[name] = (ptr, nbytes)
        return ptr

    @staticmethod
    def _output(op: str, n: int, c: int, crop: tuple[int, int]) -> np.ndarray:
        if op == "bilinear_argmax_u8":
            return np.empty((n, *crop), np.uint8)
        if op == "bilinear_argmax_i32":
            return np.empty((n, *crop), np.int32)
        return np.empty((n, c, *crop), np.float32)

    def _launch_and_fetch(self, op: str, d_in: int, shape: tuple[int, int, int, int], size: tuple[int, int],
                          crop: tuple[int, int], align_corners: bool) -> np.ndarray:
        d = self._driver
        out = self._output(op, shape[0], shape[1], crop)
        d_out = self._buffer("out", out.nbytes)
        self.launch(op, d_in, d_out, shape, size, crop, align_corners)
        check(d.cuMemcpyDtoHAsync(out.ctypes.data, d_out, out.nbytes, self.stream), "cuMemcpyDtoHAsync")
        check(d.cuStreamSynchronize(self.stream), "cuStreamSynchronize")
        return out

    def _run_host(self, op: str, x: np.ndarray, size: tuple[int, int], crop: tuple[int, int],
                  align_corners: bool) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float32)
        d_in = self._buffer("in", x.nbytes)
        check(self._driver.cuMemcpyHtoDAsync(d_in, x.ctypes.data, x.nbytes, self.stream), "cuMemcpyHtoDAsync")
        return self._launch_and_fetch(op, d_in, x.shape, size, crop, align_corners)

    def run(self, op: str, x: np.ndarray, size: tuple[int, int], crop: tuple[int, int],
            align_corners: bool) -> np.ndarray:
        """Host in, host out: copy x to the GPU, run ``op``, copy the result back."""
        with self._lock, self._current():
            return self._run_host(op, x, size, crop, align_corners)

    def run_device(self, op: str, x: DeviceLogits, size: tuple[int, int], crop: tuple[int, int],
                   align_corners: bool) -> np.ndarray:
        """Logits already in this GPU's memory (N×C×h×w float32) in, host result out: no host round trip."""
        if x.device != self.device:
            raise CudaError(f"logits on GPU {x.device} given to the upsampler of GPU {self.device}")
        if x.dtype != np.float32 or len(x.shape) != 4:
            raise CudaError(f"device logits must be N×C×h×w float32, got {x.shape} {x.dtype}")
        with self._lock, self._current():
            return self._launch_and_fetch(op, x.pointer, x.shape, size, crop, align_corners)

    def close(self) -> None:
        with self._lock, self._current():
            for ptr, _ in self._buffers.values():
                self._driver.cuMemFree(ptr)
            self._buffers.clear()
            if self.stream is not None:
                self._driver.cuStreamDestroy(self.stream)
            if self._module is not None:
                self._driver.cuModuleUnload(self._module)
        self._driver.cuDevicePrimaryCtxRelease(self._device)


_defaults: dict[int, CudaUpsampler] = {}
_default_lock = threading.Lock()


def default_upsampler(device: int = 0) -> CudaUpsampler:
    """The process-wide upsampler of GPU ``device`` (created on first use)."""
    with _default_lock:
        if device not in _defaults:
            _defaults[device] = CudaUpsampler(device)
        return _defaults[device]


def reset_default_upsamplers() -> None:
    """Close the process-wide upsamplers (their GPUs' state is gone, e.g. between tests)."""
    with _default_lock:
        for upsampler in _defaults.values():
            try:
                upsampler.close()
            except CudaError:
                pass
        _defaults.clear()
