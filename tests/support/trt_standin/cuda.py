"""A ``cuda.bindings`` stand-in: the runtime and driver calls this project makes, with cuda-python's conventions
(every call returns a tuple ``(error, *values)``; errors are enum members with ``.name``).

Device memory is host memory behind fake addresses (above 2**48, so host code that dereferences one crashes as it
would on a GPU); every copy or kernel access is bounds-checked against the allocation it falls in and fails with an
illegal-address error otherwise. Streams queue their work and run it at synchronization; graph capture records the
queued work and a graph launch replays it. Each device has a primary context; the current device is per thread.
NVRTC is cuda-python's own (it compiles without a GPU); "kernels" are emulated from the launched function's name.
"""
from __future__ import annotations

import collections
import ctypes
import enum
import functools
import re
import threading
from dataclasses import dataclass, field
from types import ModuleType, SimpleNamespace
from typing import Any, Callable

import numpy as np

DEVICE_BASE = 1 << 48


class cudaError_t(enum.IntEnum):
    cudaSuccess = 0
    cudaErrorInvalidValue = 1
    cudaErrorMemoryAllocation = 2
    cudaErrorInvalidDevicePointer = 17
    cudaErrorInvalidMemcpyDirection = 21
    cudaErrorInsufficientDriver = 35
    cudaErrorInvalidDevice = 101
    cudaErrorInvalidResourceHandle = 400
    cudaErrorIllegalAddress = 700
    cudaErrorLaunchFailure = 719
    cudaErrorStreamCaptureUnsupported = 900
    cudaErrorStreamCaptureInvalidated = 901
    cudaErrorStreamCaptureImplicit = 906


class CUresult(enum.IntEnum):
    CUDA_SUCCESS = 0
    CUDA_ERROR_INVALID_VALUE = 1
    CUDA_ERROR_NOT_INITIALIZED = 3
    CUDA_ERROR_INVALID_DEVICE = 101
    CUDA_ERROR_NO_BINARY_FOR_GPU = 209
    CUDA_ERROR_INVALID_CONTEXT = 201
    CUDA_ERROR_INVALID_HANDLE = 400
    CUDA_ERROR_NOT_FOUND = 500
    CUDA_ERROR_ILLEGAL_ADDRESS = 700


class cudaMemcpyKind(enum.IntEnum):
    cudaMemcpyHostToHost = 0
    cudaMemcpyHostToDevice = 1
    cudaMemcpyDeviceToHost = 2
    cudaMemcpyDeviceToDevice = 3
    cudaMemcpyDefault = 4


class cudaStreamCaptureMode(enum.IntEnum):
    cudaStreamCaptureModeGlobal = 0
    cudaStreamCaptureModeThreadLocal = 1
    cudaStreamCaptureModeRelaxed = 2


class cudaDeviceAttr(enum.IntEnum):
    cudaDevAttrComputeCapabilityMajor = 75
    cudaDevAttrComputeCapabilityMinor = 76


class CUdevice_attribute(enum.IntEnum):
    CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR = 75
    CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR = 76


class StandinFault(Exception):
    """Raised inside queued work: the stream records the CUDA error and reports it at synchronization."""

    def __init__(self, error: cudaError_t, what: str) -> None:
        super().__init__(what)
        self.error = error


@dataclass
class Allocation:
    base: int
    data: np.ndarray  # uint8
    device: int | None  # None: pinned host memory (real address)

    @property
    def size(self) -> int:
        return self.data.size


class _Handle:
    """An opaque CUDA handle (stream, event, graph, context, ...): ``int(h)`` gives its address, as cuda-python's."""

    _next = 0x5000
    _lock = threading.Lock()

    def __init__(self) -> None:
        with _Handle._lock:
            _Handle._next += 0x10
            self._addr = _Handle._next

    def __int__(self) -> int:
        return self._addr

    def getPtr(self) -> int:
        return self._addr


class Stream(_Handle):
    def __init__(self, device: int, flags: int) -> None:
        super().__init__()
        self.device, self.flags = device, flags
        self.queue: list[Callable[[], None]] = []
        self.capture: list[Callable[[], None]] | None = None
        self.capture_invalidated = False
        self.error: cudaError_t | None = None


class Graph(_Handle):
    def __init__(self, work: list[Callable[[], None]]) -> None:
        super().__init__()
        self.work = list(work)


class Context(_Handle):
    def __init__(self, device: int) -> None:
        super().__init__()
        self.device = device


class Module(_Handle):
    def __init__(self, functions: set[str], device: int) -> None:
        super().__init__()
        self.functions, self.device = functions, device


class Function(_Handle):
    def __init__(self, name: str, module: Module) -> None:
        super().__init__()
        self.name, self.module = name, module


@dataclass
class DeviceSpec:
    name: str = "Stand-in GPU (no hardware)"
    capability: tuple[int, int] = (8, 7)


@dataclass
class State:
    """Everything the stand-in GPU(s) hold; one per process (shared by the cuda and tensorrt stand-ins)."""

    devices: list[DeviceSpec] = field(default_factory=lambda: [DeviceSpec()])
    allocations: dict[int, Allocation] = field(default_factory=dict)
    next_device_address: int = DEVICE_BASE
    local: threading.local = field(default_factory=threading.local)
    lock: threading.RLock = field(default_factory=threading.RLock)
    contexts: dict[int, Context] = field(default_factory=dict)
    streams: set[int] = field(default_factory=set)
    capturing: set[int] = field(default_factory=set)  # ids of streams in capture (for implicit-sync checks)
    calls: collections.Counter = field(default_factory=collections.Counter)  # API name -> calls (for tests)
    _all_streams: list = field(default_factory=list)

    # -- current device (per thread; the runtime API's and the driver's current context are the same thing) --------
    @property
    def current(self) -> int:
        return getattr(self.local, "device", 0)

    @current.setter
    def current(self, device: int) -> None:
        self.local.device = device

    # -- memory --------------------------------------------------------------------------------------------------
    def malloc(self, nbytes: int, device: int | None) -> int:
        with self.lock:
            data = np.zeros(max(int(nbytes), 1), np.uint8)
            if device is None:
                base = data.ctypes.data
            else:
                base = self.next_device_address
                self.next_device_address += (max(int(nbytes), 1) + 0xFFFF) & ~0xFFF  # a gap after each allocation
            self.allocations[base] = Allocation(base, data, device)
            return base

    def free(self, ptr: int) -> bool:
        with self.lock:
            return self.allocations.pop(int(ptr), None) is not None

    def find(self, ptr: int) -> Allocation | None:
        ptr = int(ptr)
        with self.lock:
            for a in self.allocations.values():
                if a.base <= ptr < a.base + a.size:
                    return a
        return None

    def is_device(self, ptr: int) -> bool:
        return int(ptr) >= DEVICE_BASE

    def view(self, ptr: int, nbytes: int, what: str) -> np.ndarray:
        """``nbytes`` of memory at ``ptr`` as a writable uint8 array: device or pinned memory bounds-checked, other
        host memory taken as the caller's (as the GPU would, through the pointer it was given)."""
        ptr, nbytes = int(ptr), int(nbytes)
        a = self.find(ptr)
        if a is None:
            if self.is_device(ptr):
                raise StandinFault(cudaError_t.cudaErrorIllegalAddress,
                                   f"{what}: {ptr:#x} is not in any device allocation")
            return np.ctypeslib.as_array((ctypes.c_uint8 * nbytes).from_address(ptr)) if nbytes else np.empty(0, np.uint8)
        off = ptr - a.base
        if off + nbytes > a.size:
            raise StandinFault(cudaError_t.cudaErrorIllegalAddress,
                               f"{what}: {nbytes} bytes at offset {off} of a {a.size}-byte allocation")
        return a.data[off:off + nbytes]

    def read(self, ptr: int, shape: tuple[int, ...], dtype: Any, what: str) -> np.ndarray:
        dtype = np.dtype(dtype)
        n = int(np.prod(shape)) * dtype.itemsize
        return self.view(ptr, n, what).view(dtype).reshape(shape).copy()

    def write(self, ptr: int, array: np.ndarray, what: str) -> None:
        array = np.ascontiguousarray(array)
        self.view(ptr, array.nbytes, what)[:] = array.reshape(-1).view(np.uint8)

    # -- streams -------------------------------------------------------------------------------------------------
    def enqueue(self, stream: Stream | int | None, work: Callable[[], None]) -> cudaError_t:
        """Queue ``work`` on a stream (or record it while capturing); the legacy default stream (0/None) runs it now,
        after every blocking stream's work (its implicit synchronization)."""
        s = self.stream(stream)
        if s is None:
            if self.capturing_blocking():
                return cudaError_t.cudaErrorStreamCaptureImplicit
            for other in list(self._streams_blocking()):
                err = self.synchronize(other)
                if err:
                    return err
            try:
                work()
            except StandinFault as e:
                return e.error
            return cudaError_t.cudaSuccess
        if s.error is not None:
            return s.error
        (s.capture if s.capture is not None else s.queue).append(work)
        return cudaError_t.cudaSuccess

    def stream(self, handle: Stream | int | None) -> Stream | None:
        if handle is None or isinstance(handle, int) and handle == 0:
            return None
        if isinstance(handle, Stream):
            return handle
        for s in self._all_streams:
            if int(s) == int(handle):
                return s
        raise StandinFault(cudaError_t.cudaErrorInvalidResourceHandle, f"unknown stream {handle!r}")

    def _streams_blocking(self):
        return [s for s in self._all_streams if not s.flags & 1]

    def capturing_blocking(self) -> bool:
        return any(s.capture is not None and not s.flags & 1 for s in self._all_streams)

    def synchronize(self, stream: Stream) -> cudaError_t:
        if stream.capture is not None:
            stream.capture_invalidated = True
            return cudaError_t.cudaErrorStreamCaptureUnsupported
        work, stream.queue = stream.queue, []
        for w in work:
            if stream.error is not None:
                break
            try:
                w()
            except StandinFault as e:
                stream.error = e.error  # sticky, as a GPU fault is
        return stream.error or cudaError_t.cudaSuccess


STATE = State()


def reset(devices: int = 1, capability: tuple[int, int] = (8, 7)) -> State:
    """A fresh stand-in GPU set (tests call this between cases)."""
    global STATE
    STATE.__init__(devices=[DeviceSpec(capability=capability) for _ in range(devices)])  # type: ignore[misc]
    return STATE


# ---------------------------------------------------------------------------------------------------------------------
# cuda.bindings.runtime

def _ok(*values: Any) -> tuple:
    return (cudaError_t.cudaSuccess, *values)


def _err(e: cudaError_t, *values: Any) -> tuple:
    return (e, *(values or (None,))) if values else (e,)


def _fault_to_tuple(fn: Callable[..., tuple]) -> Callable[..., tuple]:
    """A call whose argument checks raise :class:`StandinFault` returns that error instead, as cuda-python does."""
    @functools.wraps(fn)
    def wrapper(*args: Any, **kw: Any) -> tuple:
        try:
            return fn(*args, **kw)
        except StandinFault as e:
            return (e.error,)
    return wrapper


def _counted(name: str, fn: Callable[..., tuple]) -> Callable[..., tuple]:
    @functools.wraps(fn)
    def call(*args: Any, **kw: Any) -> tuple:
        STATE.calls[name] += 1
        return fn(*args, **kw)
    return call


def _copy_kind_ok(dst: int, src: int, kind: int) -> bool:
    d, s = STATE.is_device(dst), STATE.is_device(src)
    expected = {cudaMemcpyKind.cudaMemcpyHostToDevice: (True, False), cudaMemcpyKind.cudaMemcpyDeviceToHost: (False, True),
                cudaMemcpyKind.cudaMemcpyDeviceToDevice: (True, True), cudaMemcpyKind.cudaMemcpyHostToHost: (False, False)}
    return kind == cudaMemcpyKind.cudaMemcpyDefault or expected.get(cudaMemcpyKind(int(kind))) == (d, s)


def _memcpy_work(dst: int, src: int, count: int, what: str) -> Callable[[], None]:
    # Validate the ranges now (cudaMemcpy* checks its arguments when called), copy when the stream gets there.
    STATE.view(dst, count, what)
    STATE.view(src, count, what)

    def work() -> None:
        STATE.view(dst, count, what)[:] = STATE.view(src, count, what)
    return work


def make_runtime() -> ModuleType:
    rt = ModuleType("cuda.bindings.runtime")
    rt.cudaError_t = cudaError_t
    rt.cudaMemcpyKind = cudaMemcpyKind
    rt.cudaStreamCaptureMode = cudaStreamCaptureMode
    rt.cudaDeviceAttr = cudaDeviceAttr
    rt.cudaStreamDefault = 0
    rt.cudaStreamNonBlocking = 1
    rt.cudaStream_t = Stream

    def cudaGetDeviceCount():
        return _ok(len(STATE.devices))

    def cudaSetDevice(device):
        if not 0 <= int(device) < len(STATE.devices):
            return (cudaError_t.cudaErrorInvalidDevice,)
        STATE.current = int(device)
        return (cudaError_t.cudaSuccess,)

    def cudaGetDevice():
        return _ok(STATE.current)

    def cudaGetDeviceProperties(device):
        if not 0 <= int(device) < len(STATE.devices):
            return (cudaError_t.cudaErrorInvalidDevice, None)
        spec = STATE.devices[int(device)]
        return _ok(SimpleNamespace(name=spec.name.encode(), major=spec.capability[0], minor=spec.capability[1]))

    def cudaDeviceGetAttribute(attr, device):
        if not 0 <= int(device) < len(STATE.devices):
            return (cudaError_t.cudaErrorInvalidDevice, None)
        cap = STATE.devices[int(device)].capability
        values = {int(cudaDeviceAttr.cudaDevAttrComputeCapabilityMajor): cap[0],
                  int(cudaDeviceAttr.cudaDevAttrComputeCapabilityMinor): cap[1]}
        return _ok(values[int(attr)]) if int(attr) in values else (cudaError_t.cudaErrorInvalidValue, None)

    def cudaMalloc(size):
        return _ok(STATE.malloc(size, STATE.current))

    def cudaMallocHost(size):
        return _ok(STATE.malloc(size, None))

    def cudaFree(ptr):
        if int(ptr) == 0:
            return (cudaError_t.cudaSuccess,)
        a = STATE.find(ptr)
        if a is None or a.device is None or a.base != int(ptr):
            return (cudaError_t.cudaErrorInvalidDevicePointer,)
        STATE.free(ptr)
        return (cudaError_t.cudaSuccess,)

    def cudaFreeHost(ptr):
        a = STATE.find(ptr)
        if a is None or a.device is not None or a.base != int(ptr):
            return (cudaError_t.cudaErrorInvalidValue,)
        STATE.free(ptr)
        return (cudaError_t.cudaSuccess,)

    @_fault_to_tuple
    def cudaMemcpy(dst, src, count, kind):
        if not _copy_kind_ok(int(dst), int(src), kind):
            return (cudaError_t.cudaErrorInvalidMemcpyDirection,)
        return (STATE.enqueue(None, _memcpy_work(int(dst), int(src), int(count), "cudaMemcpy")),)

    @_fault_to_tuple
    def cudaMemcpyAsync(dst, src, count, kind, stream):
        if not _copy_kind_ok(int(dst), int(src), kind):
            return (cudaError_t.cudaErrorInvalidMemcpyDirection,)
        return (STATE.enqueue(stream, _memcpy_work(int(dst), int(src), int(count), "cudaMemcpyAsync")),)

    def _create(flags: int):
        s = Stream(STATE.current, int(flags))
        STATE._all_streams.append(s)
        return _ok(s)

    def cudaStreamCreate():
        return _create(0)

    def cudaStreamCreateWithFlags(flags):
        return _create(flags)

    @_fault_to_tuple
    def cudaStreamGetFlags(stream):
        s = STATE.stream(stream)
        return _ok(0 if s is None else s.flags)

    @_fault_to_tuple
    def cudaStreamDestroy(stream):
        s = STATE.stream(stream)
        if s is None or s not in STATE._all_streams:
            return (cudaError_t.cudaErrorInvalidResourceHandle,)
        STATE.synchronize(s)
        STATE._all_streams.remove(s)
        return (cudaError_t.cudaSuccess,)

    @_fault_to_tuple
    def cudaStreamSynchronize(stream):
        s = STATE.stream(stream)
        if s is None:
            return (cudaDeviceSynchronize()[0],)
        return (STATE.synchronize(s),)

    def cudaDeviceSynchronize():
        if STATE.capturing_blocking():
            return (cudaError_t.cudaErrorStreamCaptureImplicit,)
        for s in list(STATE._all_streams):
            if s.capture is None:
                err = STATE.synchronize(s)
                if err:
                    return (err,)
        return (cudaError_t.cudaSuccess,)

    @_fault_to_tuple
    def cudaStreamBeginCapture(stream, mode):
        s = STATE.stream(stream)
        if s is None:
            return (cudaError_t.cudaErrorStreamCaptureUnsupported,)
        if s.capture is not None:
            return (cudaError_t.cudaErrorInvalidValue,)
        s.capture, s.capture_invalidated = [], False
        return (cudaError_t.cudaSuccess,)

    @_fault_to_tuple
    def cudaStreamEndCapture(stream):
        s = STATE.stream(stream)
        if s is None or s.capture is None:
            return (cudaError_t.cudaErrorInvalidValue, None)
        work, s.capture = s.capture, None
        if s.capture_invalidated:
            return (cudaError_t.cudaErrorStreamCaptureInvalidated, None)
        return _ok(Graph(work))

    @_fault_to_tuple
    def cudaStreamIsCapturing(stream):
        s = STATE.stream(stream)
        return _ok(int(s is not None and s.capture is not None))

    def cudaGraphInstantiate(graph, flags):
        if not isinstance(graph, Graph):
            return (cudaError_t.cudaErrorInvalidValue, None)
        return _ok(Graph(graph.work))

    @_fault_to_tuple
    def cudaGraphLaunch(graph_exec, stream):
        if not isinstance(graph_exec, Graph):
            return (cudaError_t.cudaErrorInvalidValue,)
        for w in graph_exec.work:
            err = STATE.enqueue(stream, w)
            if err:
                return (err,)
        return (cudaError_t.cudaSuccess,)

    def cudaGraphExecDestroy(graph_exec):
        return (cudaError_t.cudaSuccess,)

    def cudaGraphDestroy(graph):
        return (cudaError_t.cudaSuccess,)

    def cudaEventCreate():
        return _ok(_Handle())

    def cudaEventDestroy(event):
        return (cudaError_t.cudaSuccess,)

    @_fault_to_tuple
    def cudaEventRecord(event, stream):
        return (STATE.enqueue(stream, lambda: None),)

    def cudaEventSynchronize(event):
        return cudaDeviceSynchronize()

    def cudaEventElapsedTime(start, end):
        return _ok(0.0)

    def cudaGetErrorString(error):
        return _ok(cudaError_t(int(error)).name.encode())

    for name, fn in list(locals().items()):
        if name.startswith("cuda") and callable(fn):
            setattr(rt, name, _counted(name, fn))
    return rt


# ---------------------------------------------------------------------------------------------------------------------
# cuda.bindings.driver (the calls runtime/upsample_cuda.py makes)

_KERNEL_ARGS = ("in", "out", "C", "h", "w", "H", "W", "out_h", "out_w", "align_corners")


def _kernel_names(image: bytes) -> set[str]:
    text = image.decode("latin-1")
    return set(re.findall(r"\.entry\s+(\w+)", text)) | set(re.findall(r"(deeplab_\w+)", text))


def _binary_arch(image: bytes) -> tuple[str, int] | None:
    """('ptx', target) or ('cubin', arch) of an NVRTC output; None when neither can be read."""
    if image[:4] == b"\x7fELF":
        e_flags = int.from_bytes(image[48:52], "little")
        # CUDA cubins keep the SM version in e_flags: bits 0-7 for older toolkits, bits 8-15 for CUDA >= 12.8/13.
        for arch in ((e_flags >> 8) & 0xFF, e_flags & 0xFF):
            if 20 <= arch <= 130:
                return "cubin", arch
        return None
    m = re.search(rb"\.target\s+sm_(\d+)", image)
    return ("ptx", int(m.group(1))) if m else None


def _emulate(name: str, params: list[int], grid: tuple[int, int, int], device: int) -> Callable[[], None]:
    from runtime import upsample  # the CPU reference of the same arithmetic (tests only)

    d_in, d_out, c, h, w, H, W, out_h, out_w, ac = params
    n = grid[2]

    def check_device(ptr: int) -> None:
        a = STATE.find(ptr)
        if a is not None and a.device is not None and a.device != device:
            raise StandinFault(cudaError_t.cudaErrorIllegalAddress,
                               f"{name}: pointer of device {a.device} used by a kernel on device {device}")

    def work() -> None:
        check_device(d_in)
        check_device(d_out)
        x = STATE.read(d_in, (n, c, h, w), np.float32, f"{name} input")
        if name == "deeplab_bilinear":
            y = upsample.bilinear(x, (H, W), bool(ac), crop=(out_h, out_w))
        elif name == "deeplab_bilinear_softmax":
            y = upsample.bilinear_softmax(x, (H, W), bool(ac), crop=(out_h, out_w))
        else:
            y = upsample.bilinear_labels(x, (H, W), bool(ac), crop=(out_h, out_w))
            y = y.astype(np.uint8 if name.endswith("u8") else np.int32)
        STATE.write(d_out, y, f"{name} output")
    return work


def make_driver() -> ModuleType:
    drv = ModuleType("cuda.bindings.driver")
    drv.CUresult = CUresult
    drv.CUdevice_attribute = CUdevice_attribute
    drv.CUstream = Stream
    ok = CUresult.CUDA_SUCCESS

    def cuInit(flags):
        return (ok,)

    def cuDeviceGet(ordinal):
        if not 0 <= int(ordinal) < len(STATE.devices):
            return (CUresult.CUDA_ERROR_INVALID_DEVICE, None)
        return (ok, int(ordinal))

    def cuDeviceGetCount():
        return (ok, len(STATE.devices))

    def cuDeviceGetAttribute(attr, dev):
        cap = STATE.devices[int(dev)].capability
        return (ok, cap[0] if int(attr) == CUdevice_attribute.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR else cap[1])

    def cuDevicePrimaryCtxRetain(dev):
        ctx = STATE.contexts.setdefault(int(dev), Context(int(dev)))
        return (ok, ctx)

    def cuDevicePrimaryCtxRelease(dev):
        return (ok,)

    def _ctx_stack() -> list:
        if not hasattr(STATE.local, "stack"):
            STATE.local.stack = []
        return STATE.local.stack

    def cuCtxSetCurrent(ctx):
        if not isinstance(ctx, Context):
            return (CUresult.CUDA_ERROR_INVALID_CONTEXT,)
        STATE.current = ctx.device
        return (ok,)

    def cuCtxGetCurrent():
        return (ok, STATE.contexts.setdefault(STATE.current, Context(STATE.current)))

    def cuCtxPushCurrent(ctx):
        if not isinstance(ctx, Context):
            return (CUresult.CUDA_ERROR_INVALID_CONTEXT,)
        _ctx_stack().append(STATE.current)
        STATE.current = ctx.device
        return (ok,)

    def cuCtxPopCurrent():
        stack = _ctx_stack()
        ctx = STATE.contexts.setdefault(STATE.current, Context(STATE.current))
        STATE.current = stack.pop() if stack else 0
        return (ok, ctx)

    def cuCtxGetDevice():
        return (ok, STATE.current)

    def cuModuleLoadData(image):
        image = bytes(image)
        arch = _binary_arch(image)
        cap = STATE.devices[STATE.current].capability
        dev_arch = cap[0] * 10 + cap[1]
        if arch is None or (arch[0] == "cubin" and arch[1] != dev_arch) or (arch[0] == "ptx" and arch[1] > dev_arch):
            return (CUresult.CUDA_ERROR_NO_BINARY_FOR_GPU, None)
        return (ok, Module(_kernel_names(image), STATE.current))

    def cuModuleGetFunction(module, name):
        name = name.decode() if isinstance(name, bytes) else str(name)
        if not isinstance(module, Module) or name not in module.functions:
            return (CUresult.CUDA_ERROR_NOT_FOUND, None)
        return (ok, Function(name, module))

    def cuModuleUnload(module):
        return (ok,)

    def cuFuncGetAttribute(attrib, func):
        return (ok, 1024) if isinstance(func, Function) else (CUresult.CUDA_ERROR_INVALID_HANDLE, None)

    def cuStreamCreate(flags):
        s = Stream(STATE.current, int(flags))
        STATE._all_streams.append(s)
        return (ok, s)

    def cuStreamDestroy(stream):
        s = STATE.stream(stream)
        if s in STATE._all_streams:
            STATE.synchronize(s)
            STATE._all_streams.remove(s)
        return (ok,)

    def _cu(err: cudaError_t) -> CUresult:
        return ok if not err else (CUresult.CUDA_ERROR_ILLEGAL_ADDRESS if err == cudaError_t.cudaErrorIllegalAddress
                                   else CUresult.CUDA_ERROR_INVALID_VALUE)

    def cuStreamSynchronize(stream):
        s = STATE.stream(stream)
        return (_cu(STATE.synchronize(s) if s else cudaError_t.cudaSuccess),)

    def cuMemAlloc(size):
        return (ok, STATE.malloc(size, STATE.current))

    def cuMemFree(ptr):
        return (ok,) if STATE.free(int(ptr)) else (CUresult.CUDA_ERROR_INVALID_VALUE,)

    def cuMemcpyHtoDAsync(dst, src, count, stream):
        try:
            return (_cu(STATE.enqueue(stream, _memcpy_work(int(dst), int(src), int(count), "cuMemcpyHtoDAsync"))),)
        except StandinFault as e:
            return (_cu(e.error),)

    def cuMemcpyDtoHAsync(dst, src, count, stream):
        try:
            return (_cu(STATE.enqueue(stream, _memcpy_work(int(dst), int(src), int(count), "cuMemcpyDtoHAsync"))),)
        except StandinFault as e:
            return (_cu(e.error),)

    def cuLaunchKernel(f, gx, gy, gz, bx, by, bz, shared, stream, kernel_params, extra):
        if not isinstance(f, Function):
            return (CUresult.CUDA_ERROR_INVALID_HANDLE,)
        if f.module.device != STATE.current:
            return (CUresult.CUDA_ERROR_INVALID_CONTEXT,)
        s = STATE.stream(stream)
        if s is not None and s.device != STATE.current:
            return (CUresult.CUDA_ERROR_INVALID_HANDLE,)
        # kernelParams: a void** (address of an array of pointers to each argument), as cuda-python passes it on.
        ptrs = (ctypes.c_uint64 * len(_KERNEL_ARGS)).from_address(int(kernel_params))
        values = []
        for i, p in enumerate(ptrs):
            ctype = ctypes.c_uint64 if i < 2 else ctypes.c_int32
            values.append(int(ctype.from_address(p).value))
        return (_cu(STATE.enqueue(stream, _emulate(f.name, values, (gx, gy, gz), STATE.current))),)

    for name, fn in list(locals().items()):
        if name.startswith("cu") and callable(fn) and not name.startswith("_"):
            setattr(drv, name, _counted(name, fn))
    return drv


def make_bindings() -> ModuleType:
    """A ``cuda.bindings`` package object: stand-in ``runtime`` and ``driver``, cuda-python's real ``nvrtc``."""
    from cuda.bindings import nvrtc

    pkg = ModuleType("cuda.bindings")
    pkg.__path__ = []  # a package, for "from cuda.bindings import runtime"
    pkg.runtime, pkg.driver, pkg.nvrtc = make_runtime(), make_driver(), nvrtc
    return pkg
