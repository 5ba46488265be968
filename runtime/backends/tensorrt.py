"""TensorRT backend: a serialized engine (``.plan``/``.engine``) run through the name-based API that exists from
TensorRT 8.5 (JetPack 5.1) through 10.x and 11.x: ``get_tensor_name/mode/dtype``, ``set_input_shape``,
``get_tensor_shape``, ``set_tensor_address``, ``execute_async_v3``. Host/device memory, copies and streams go through
cuda-python (``cuda.bindings.runtime``, as TensorRT's own samples do since 8.6). Every I/O buffer is sized from what
the engine reports for the profile's maximum input (``set_input_shape`` at the maximum, then ``get_tensor_shape``, as
NVIDIA's ``common_runtime.py`` does), allocated once and reused for every frame. ``cuda_graph=True`` captures the
enqueue in a CUDA graph on a non-blocking stream and replays it while the input shape stays the same.

The engine's sidecar (``<engine>.json``: model metadata, TensorRT version, GPU, profile) is checked by
:mod:`runtime.engine_info` before deserializing, so a plan built for another TensorRT or GPU fails with a message that
names the difference and the rebuild command, not with TensorRT's opaque error.

Tested against the TensorRT + cuda.bindings stand-ins of tests/support (TensorRT 8.5, 8.6, 10.x and 11 API surfaces);
see docs/standin.md for what that proves and what only a GPU can.
"""
from __future__ import annotations

import ctypes
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from runtime.backends.base import Backend, BackendError
from runtime.backends.base import DeviceLogits
from runtime.cuda_util import CudaError, DeviceBuffer, check, cuda_modules
from runtime.engine_info import EngineInfoError, check_engine, current_platform, max_batch, needs_host_code
from runtime.metadata import ModelMeta
from runtime.preprocess import ImageError, padded_size

Shape = Sequence[int]


def input_size(profile: dict[str, Shape], height: int, width: int, stride: int) -> tuple[int, int]:
    """The network input size for an image under an engine profile ({"min","opt","max"} N×C×H×W): the image padded to
    a multiple of ``stride``, clamped into the profile (a fixed 321×321 engine takes every image up to 321×321 padded
    to 321×321); an image above the maximum is an :class:`ImageError`."""
    (min_h, min_w), (max_h, max_w) = profile["min"][2:], profile["max"][2:]
    if height > max_h or width > max_w:
        raise ImageError(f"image {height}×{width} is above the engine profile's maximum input {max_h}×{max_w}; "
                         "rebuild the engine with a larger --max-shape")
    ph, pw = padded_size(height, width, stride)
    return min(max(ph, min_h), max_h), min(max(pw, min_w), max_w)


def check_batch(shape: Shape, profile: dict[str, Shape]) -> str | None:
    """Why a batch shape falls outside the profile, or None when it fits."""
    lo, hi = profile["min"], profile["max"]
    if len(shape) != 4 or any(not lo[i] <= shape[i] <= hi[i] for i in range(4)):
        return (f"input shape {tuple(shape)} is outside the engine profile "
                f"{'x'.join(map(str, lo))} .. {'x'.join(map(str, hi))}")
    return None


class _Pinned:
    """A pinned host buffer and a device buffer of the same size, allocated once."""

    def __init__(self, runtime: Any, nbytes: int, dtype: np.dtype) -> None:
        self._rt = runtime
        self.nbytes = nbytes
        self.dtype = np.dtype(dtype)
        self.host_ptr = int(check(runtime.cudaMallocHost(nbytes), "cudaMallocHost"))
        self.device = int(check(runtime.cudaMalloc(nbytes), "cudaMalloc"))
        buf = (ctypes.c_byte * nbytes).from_address(self.host_ptr)
        self.host = np.frombuffer(buf, dtype=self.dtype)

    def fits(self, shape: Shape) -> bool:
        return int(np.prod(shape)) * self.dtype.itemsize <= self.nbytes

    def view(self, shape: Shape) -> np.ndarray:
        return self.host[: int(np.prod(shape))].reshape(shape)

    def free(self) -> None:
        self._rt.cudaFree(self.device)
        self._rt.cudaFreeHost(self.host_ptr)


def io_dtype(trt: Any, dtype: Any, tensor: str) -> np.dtype:
    """The numpy type of an engine I/O tensor; BF16/FP8/INT4 (no numpy type) are a :class:`BackendError`."""
    try:
        return np.dtype(trt.nptype(dtype))
    except TypeError:
        raise BackendError(f"the engine's {tensor!r} tensor is {getattr(dtype, 'name', dtype)}, which this runtime "
                           "cannot feed or read (numpy has no such type): build the engine with FP32 or FP16 I/O "
                           "(python -m export fp16 keeps FP32 I/O unless --fp16-io)") from None


class TensorRTBackend(Backend):
    """An engine in one execution context on one stream, on GPU ``device``. Not thread-safe (Segmenter serializes
    ``infer``); every call makes ``device`` current first, so several backends on several GPUs can share a thread."""

    name = "tensorrt"
    device_output = True

    def __init__(self, path: str | os.PathLike, *, meta: ModelMeta | None = None, cuda_graph: bool = False,
                 device: int = 0) -> None:
        import tensorrt as trt

        path = Path(path)
        if not path.is_file():
            raise BackendError(f"engine file not found: {path}")
        try:
            sidecar_meta, info, _ = check_engine(path, current_platform(device))
        except EngineInfoError as e:
            raise BackendError(str(e)) from None
        self.meta = meta or sidecar_meta
        self.gpu = int(device)  # the CUDA device index (``device`` elsewhere may name a server)
        _, self._rt, _ = cuda_modules()
        rt = self._rt
        self.stream = None
        check(rt.cudaSetDevice(self.gpu), "cudaSetDevice")

        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        if needs_host_code(info):  # version-compatible plans embed a lean runtime (trusted engines only)
            self._runtime.engine_host_code_allowed = True
        self.engine = self._runtime.deserialize_cuda_engine(path.read_bytes())
        if self.engine is None:
            raise BackendError(f"TensorRT could not deserialize {path} (corrupt file, or built for another version)")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self._in, self._out = self.meta.input_name, self.meta.output_name
        modes = {n: self.engine.get_tensor_mode(n) for n in names}
        if modes.get(self._in) != trt.TensorIOMode.INPUT or modes.get(self._out) != trt.TensorIOMode.OUTPUT:
            raise BackendError(f"{path}: metadata names input {self._in!r} and output {self._out!r}, the engine has "
                               f"{', '.join(f'{n} ({m.name})' for n, m in modes.items())}")
        in_dtype = io_dtype(trt, self.engine.get_tensor_dtype(self._in), self._in)
        out_dtype = io_dtype(trt, self.engine.get_tensor_dtype(self._out), self._out)
        lo, opt, hi = (tuple(int(d) for d in s) for s in self.engine.get_tensor_profile_shape(self._in, 0))
        self.profile = {"min": list(lo), "opt": list(opt), "max": list(hi)}
        self.max_batch = max_batch(self.profile)  # `export engine --max-batch N`
        max_out = self._output_shape(hi)
        self._input = _Pinned(rt, int(np.prod(hi)) * in_dtype.itemsize, in_dtype)
        self._output = _Pinned(rt, int(np.prod(max_out)) * out_dtype.itemsize, out_dtype)
        # Non-blocking: work other threads put on the legacy default stream neither waits for this stream nor
        # invalidates a graph being captured on it.
        self.stream = check(rt.cudaStreamCreateWithFlags(rt.cudaStreamNonBlocking), "cudaStreamCreateWithFlags")
        for name, buf in ((self._in, self._input), (self._out, self._output)):
            if not self.context.set_tensor_address(name, buf.device):
                raise BackendError(f"TensorRT rejected the address of {name!r}")
        self.cuda_graph = cuda_graph
        self._graph_exec = None
        self._graph = None
        self._shape: tuple[int, ...] | None = None
        self._out_shape: tuple[int, ...] | None = None

    def _output_shape(self, input_shape: Shape) -> tuple[int, ...]:
        """The logits shape the engine computes for ``input_shape`` (set on the context, which keeps it)."""
        shape = tuple(int(d) for d in input_shape)
        if not self.context.set_input_shape(self._in, shape):
            raise BackendError(f"TensorRT rejected input shape {shape} (profile "
                               f"{self.profile['min']} .. {self.profile['max']})")
        out = tuple(int(d) for d in self.context.get_tensor_shape(self._out))
        if any(d < 0 for d in out):
            raise BackendError(f"the engine reports output shape {out} for input {shape}: its output size depends "
                               "on the data, which this runtime does not support")
        self._shape = None  # the context's shape changed: the next infer sets its own
        return out

    def input_size(self, height: int, width: int) -> tuple[int, int]:
        """The input size for an image of this size under the engine's profile."""
        return input_size(self.profile, height, width, self.meta.output_stride)

    def _set_shape(self, shape: tuple[int, ...]) -> None:
        out = self._output_shape(shape)
        if not self._output.fits(out):
            raise BackendError(f"the engine's output {out} for input {shape} exceeds the buffer sized for the "
                               f"profile maximum {tuple(self.profile['max'])}")
        self._out_shape = out
        self._shape = shape
        self._drop_graph()

    def _drop_graph(self) -> None:
        if self._graph_exec is not None:
            self._rt.cudaGraphExecDestroy(self._graph_exec)
            self._rt.cudaGraphDestroy(self._graph)
            self._graph_exec = self._graph = None

    def _execute(self) -> None:
        if not self.context.execute_async_v3(int(self.stream)):
            raise BackendError("TensorRT execute_async_v3 failed (TensorRT's message above says why)")

    def _enqueue(self) -> None:
        if not self.cuda_graph:
            self._execute()
            return
        rt = self._rt
        if self._graph_exec is None:
            # The first enqueue after a shape change does lazy initialization, which must not be captured.
            self._execute()
            check(rt.cudaStreamSynchronize(self.stream), "cudaStreamSynchronize")
            check(rt.cudaStreamBeginCapture(self.stream, rt.cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal),
                  "cudaStreamBeginCapture")
            ok = self.context.execute_async_v3(int(self.stream))
            graph = check(rt.cudaStreamEndCapture(self.stream), "cudaStreamEndCapture")
            if not ok:
                rt.cudaGraphDestroy(graph)
                raise BackendError("TensorRT execute_async_v3 failed while capturing a CUDA graph "
                                   "(this engine may not be capturable: open it with cuda_graph=False)")
            self._graph = graph
            self._graph_exec = check(rt.cudaGraphInstantiate(self._graph, 0), "cudaGraphInstantiate")
        check(rt.cudaGraphLaunch(self._graph_exec, self.stream), "cudaGraphLaunch")

    def _run(self, batch: np.ndarray) -> None:
        """Copy ``batch`` in and enqueue the network on the stream (no synchronization)."""
        shape = tuple(int(d) for d in batch.shape)
        problem = check_batch(shape, self.profile)
        if problem:
            raise BackendError(problem)
        if not self._input.fits(shape):
            raise BackendError(f"input {shape} exceeds the buffer sized for the profile maximum")
        rt = self._rt
        check(rt.cudaSetDevice(self.gpu), "cudaSetDevice")
        if shape != self._shape:
            self._set_shape(shape)
        host_in = self._input.view(shape)
        np.copyto(host_in, batch, casting="same_kind")
        check(rt.cudaMemcpyAsync(self._input.device, self._input.host_ptr, host_in.nbytes,
                                 rt.cudaMemcpyKind.cudaMemcpyHostToDevice, self.stream), "cudaMemcpyAsync")
        self._enqueue()

    def infer(self, batch: np.ndarray) -> np.ndarray:
        rt = self._rt
        try:
            self._run(batch)
            host_out = self._output.view(self._out_shape)
            check(rt.cudaMemcpyAsync(self._output.host_ptr, self._output.device, host_out.nbytes,
                                     rt.cudaMemcpyKind.cudaMemcpyDeviceToHost, self.stream), "cudaMemcpyAsync")
            check(rt.cudaStreamSynchronize(self.stream), "cudaStreamSynchronize")
        except CudaError as e:
            raise BackendError(str(e)) from None
        return host_out.astype(np.float32, copy=True)

    def infer_device(self, batch: np.ndarray) -> DeviceLogits:
        """The logits left on the GPU: a copy (device to device) that the next ``infer`` does not overwrite, so
        another thread may upsample it meanwhile. FP32 engines output only (the CUDA kernels read float32)."""
        rt = self._rt
        if self._output.dtype != np.float32:
            raise BackendError(f"device-resident logits need an FP32 output; this engine's is {self._output.dtype}")
        try:
            self._run(batch)
            nbytes = int(np.prod(self._out_shape)) * 4
            buffer = DeviceBuffer(rt, nbytes, self.gpu)
            check(rt.cudaMemcpyAsync(buffer.ptr, self._output.device, nbytes,
                                     rt.cudaMemcpyKind.cudaMemcpyDeviceToDevice, self.stream), "cudaMemcpyAsync")
            check(rt.cudaStreamSynchronize(self.stream), "cudaStreamSynchronize")
        except CudaError as e:
            raise BackendError(str(e)) from None
        return DeviceLogits(buffer.ptr, self._out_shape, np.dtype(np.float32), self.gpu, buffer)

    def close(self) -> None:
        if getattr(self, "stream", None) is None:
            return
        self._rt.cudaSetDevice(self.gpu)
        self._drop_graph()
        self._input.free()
        self._output.free()
        self._rt.cudaStreamDestroy(self.stream)
        self.stream = None
        self.context = self.engine = None
