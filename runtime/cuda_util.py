"""cuda-python access shared by the NVRTC kernels and the TensorRT backend: imports, GPU detection, error checks.

cuda-python imports without a GPU or driver (unlike pycuda), so everything here is safe to call on any machine.
"""
from __future__ import annotations

import functools
from types import ModuleType
from typing import Any


class CudaError(RuntimeError):
    """A CUDA driver/runtime/NVRTC call failed; the message names the call and the error."""


@functools.lru_cache(maxsize=1)
def cuda_modules() -> tuple[ModuleType, ModuleType, ModuleType]:
    """``(driver, runtime, nvrtc)`` from cuda-python: ``cuda.bindings`` (12.6+, the only layout in 13.x), else the
    older ``cuda.cuda``/``cuda.cudart``/``cuda.nvrtc``. Raises ImportError when cuda-python is not installed."""
    try:
        from cuda.bindings import driver, nvrtc, runtime
    except ImportError:
        from cuda import cuda as driver  # type: ignore[no-redef]
        from cuda import cudart as runtime  # type: ignore[no-redef]
        from cuda import nvrtc  # type: ignore[no-redef]
    return driver, runtime, nvrtc


def check(result: Any, call: str = "CUDA call") -> Any:
    """Unwrap cuda-python's ``(error, *values)`` return convention: raise :class:`CudaError` unless the error is
    success; return None, the single value, or the tuple of values."""
    if not isinstance(result, tuple):
        result = (result,)
    err, values = result[0], result[1:]
    if int(err) != 0:
        raise CudaError(f"{call} failed: {getattr(err, 'name', err)}")
    if not values:
        return None
    return values[0] if len(values) == 1 else values


@functools.lru_cache(maxsize=1)
def gpu_count() -> int:
    """Number of CUDA devices usable through the runtime API; 0 without cuda-python, a driver or a GPU."""
    try:
        _, runtime, _ = cuda_modules()
        err, n = runtime.cudaGetDeviceCount()
    except Exception:  # noqa: BLE001 - ImportError, a missing driver library (DynamicLibNotFoundError), ...
        return 0
    return int(n) if int(err) == 0 and n else 0


def gpu_available() -> bool:
    return gpu_count() > 0


def compute_capability(device: int = 0) -> tuple[int, int]:
    """``(major, minor)`` of a device."""
    _, runtime, _ = cuda_modules()
    major = check(runtime.cudaDeviceGetAttribute(runtime.cudaDeviceAttr.cudaDevAttrComputeCapabilityMajor, device))
    minor = check(runtime.cudaDeviceGetAttribute(runtime.cudaDeviceAttr.cudaDevAttrComputeCapabilityMinor, device))
    return int(major), int(minor)


class DeviceBuffer:
    """``nbytes`` of device memory on ``device`` (cudaMalloc), freed by :meth:`free` or when collected."""

    def __init__(self, runtime: Any, nbytes: int, device: int) -> None:
        self._rt = runtime
        self.device = device
        self.ptr = int(check(runtime.cudaMalloc(nbytes), "cudaMalloc"))
        self.nbytes = nbytes

    def free(self) -> None:
        if self.ptr:
            self._rt.cudaFree(self.ptr)
            self.ptr = 0

    def __del__(self) -> None:
        self.free()
