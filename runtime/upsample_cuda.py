"""CUDA bilinear upsampling + softmax/argmax: runtime/kernels/bilinear_softmax.cu compiled at run time with NVRTC
(through cuda-python), cached on disk by source hash and GPU architecture, launched through the driver API.

No build step on the target: the first use on a GPU compiles the kernels (about a second) and writes
``$DEEPLAB_CACHE_DIR`` (default ``~/.cache/deeplab-deploy``) ``/kernels/<hash>-sm_XY.cubin``; later runs load that file.
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import threading
from pathlib import Path
from typing import Sequence

import numpy as np

from runtime.atomic import atomic_write_bytes
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
    """The kernels loaded on one GPU. ``launch`` works on device pointers (for backends whose logits are already on
    the GPU); ``run`` takes and returns host arrays. Calls are serialized by a lock (one stream)."""

    def __init__(self, device: int = 0) -> None:
        driver, _, _ = cuda_modules()
        self._driver = driver
        check(driver.cuInit(0), "cuInit")
        self._device = check(driver.cuDeviceGet(device), "cuDeviceGet")
        self._context = check(driver.cuDevicePrimaryCtxRetain(self._device), "cuDevicePrimaryCtxRetain")
        check(driver.cuCtxSetCurrent(self._context), "cuCtxSetCurrent")
        attr = driver.CUdevice_attribute
        capability = tuple(int(check(driver.cuDeviceGetAttribute(a, self._device), "cuDeviceGetAttribute"))
                           for a in (attr.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR,
                                     attr.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR))
        self._module = check(driver.cuModuleLoadData(cached_kernels(capability)), "cuModuleLoadData")
        self._functions = {op: check(driver.cuModuleGetFunction(self._module, name.encode()), "cuModuleGetFunction")
                           for op, name in KERNELS.items()}
        self.stream = check(driver.cuStreamCreate(0), "cuStreamCreate")
        self._buffers: dict[str, tuple[int, int]] = {}  # name -> (device pointer, bytes), grown on demand
        self._lock = threading.Lock()

    def launch(self, op: str, d_in: int, d_out: int, shape: tuple[int, int, int, int], size: tuple[int, int],
               crop: tuple[int, int], align_corners: bool, stream=None) -> None:
        """Enqueue kernel ``op`` on device pointers: d_in N×C×h×w float32 → d_out (N×C×crop or N×crop)."""
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

    def run(self, op: str, x: np.ndarray, size: tuple[int, int], crop: tuple[int, int],
            align_corners: bool) -> np.ndarray:
        """Host in, host out: copy x to the GPU, run ``op``, copy the result back."""
        n, c = x.shape[:2]
        if op == "bilinear_argmax_u8":
            out = np.empty((n, *crop), np.uint8)
        elif op == "bilinear_argmax_i32":
            out = np.empty((n, *crop), np.int32)
        else:
            out = np.empty((n, c, *crop), np.float32)
        d = self._driver
        with self._lock:
            check(d.cuCtxSetCurrent(self._context), "cuCtxSetCurrent")
            d_in, d_out = self._buffer("in", x.nbytes), self._buffer("out", out.nbytes)
            check(d.cuMemcpyHtoDAsync(d_in, x.ctypes.data, x.nbytes, self.stream), "cuMemcpyHtoDAsync")
            self.launch(op, d_in, d_out, x.shape, size, crop, align_corners)
            check(d.cuMemcpyDtoHAsync(out.ctypes.data, d_out, out.nbytes, self.stream), "cuMemcpyDtoHAsync")
            check(d.cuStreamSynchronize(self.stream), "cuStreamSynchronize")
        return out

    def close(self) -> None:
        with self._lock:
            for ptr, _ in self._buffers.values():
                self._driver.cuMemFree(ptr)
            self._buffers.clear()
            self._driver.cuStreamDestroy(self.stream)
            self._driver.cuModuleUnload(self._module)
            self._driver.cuDevicePrimaryCtxRelease(self._device)


_default: CudaUpsampler | None = None
_default_lock = threading.Lock()


def default_upsampler() -> CudaUpsampler:
    """The process-wide upsampler on GPU 0 (created on first use)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = CudaUpsampler(0)
        return _default
