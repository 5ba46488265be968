"""TensorRT backend: a serialized engine (``.plan``/``.engine``) run through the name-based API that exists from
TensorRT 8.5 (JetPack 5.1) through 10.x and 11.x: ``get_tensor_name/mode/dtype``, ``set_input_shape``,
``set_tensor_address``, ``execute_async_v3``. Host/device memory, copies and streams go through cuda-python
(``cuda.bindings.runtime``, as TensorRT's own samples do since 8.6); pinned host buffers and device buffers are sized
for the engine profile's maximum shape once and reused for every frame. ``cuda_graph=True`` captures the enqueue in
a CUDA graph and replays it while the input shape stays the same (recaptured when it changes).

The engine's sidecar (``<engine>.json``: model metadata, TensorRT version, GPU, profile) is checked by
:mod:`runtime.engine_info` before deserializing, so a plan built for another TensorRT or GPU fails with a message that
names the difference and the rebuild command, not with TensorRT's opaque error.

The pure functions at the top are tested everywhere; the class below follows NVIDIA's documented Python API and
samples and runs only where TensorRT and a GPU are (its tests are marked ``gpu``).
"""
from __future__ import annotations

import ctypes
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from runtime.backends.base import Backend, BackendError
from runtime.cuda_util import CudaError, check, cuda_modules
from runtime.engine_info import EngineInfoError, check_engine, current_platform, needs_host_code
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


def output_capacity(max_input: Shape, n_classes: int, stride: int) -> tuple[int, int, int, int]:
    """The largest logits shape of the profile: N×C×ceil(H/stride)×ceil(W/stride)."""
    n, _, h, w = max_input
    return n, n_classes, -(-h // stride), -(-w // stride)


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

    def view(self, shape: Shape) -> np.ndarray:
        return self.host[: int(np.prod(shape))].reshape(shape)

    def free(self) -> None:
        self._rt.cudaFree(self.device)
        self._rt.cudaFreeHost(self.host_ptr)


class TensorRTBackend(Backend):
    """An engine in one execution context on one stream. Not thread-safe (Segmenter serializes ``infer``)."""

    name = "tensorrt"

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
        self.profile = {k: list(v) for k, v in info.profile.items()}
        _, self._rt, _ = cuda_modules()
        rt = self._rt
        check(rt.cudaSetDevice(device), "cudaSetDevice")

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
        in_dtype = np.dtype(trt.nptype(self.engine.get_tensor_dtype(self._in)))
        out_dtype = np.dtype(trt.nptype(self.engine.get_tensor_dtype(self._out)))
        max_in = self.profile["max"]
        max_out = output_capacity(max_in, self.meta.n_classes, self.meta.output_stride)
        self._input = _Pinned(rt, int(np.prod(max_in)) * in_dtype.itemsize, in_dtype)
        self._output = _Pinned(rt, int(np.prod(max_out)) * out_dtype.itemsize, out_dtype)
        self.stream = check(rt.cudaStreamCreate(), "cudaStreamCreate")
        self.context.set_tensor_address(self._in, self._input.device)
        self.context.set_tensor_address(self._out, self._output.device)
        self.cuda_graph = cuda_graph
        self._graph_exec = None
        self._graph = None
        self._shape: tuple[int, ...] | None = None
        self._out_shape: tuple[int, ...] | None = None

    def input_size(self, height: int, width: int) -> tuple[int, int]:
        """The input size for an image of this size under the engine's profile."""
        return input_size(self.profile, height, width, self.meta.output_stride)

    def _set_shape(self, shape: tuple[int, ...]) -> None:
        if not self.context.set_input_shape(self._in, shape):
            raise BackendError(f"TensorRT rejected input shape {shape}")
        self._out_shape = tuple(self.context.get_tensor_shape(self._out))
        self._shape = shape
        self._drop_graph()

    def _drop_graph(self) -> None:
        if self._graph_exec is not None:
            self._rt.cudaGraphExecDestroy(self._graph_exec)
            self._rt.cudaGraphDestroy(self._graph)
            self._graph_exec = self._graph = None

    def _enqueue(self) -> None:
        if not self.cuda_graph:
            if not self.context.execute_async_v3(int(self.stream)):
                raise BackendError("TensorRT execute_async_v3 failed")
            return
        rt = self._rt
        if self._graph_exec is None:
            # The first enqueue after a shape change does lazy initialization, which must not be captured.
            if not self.context.execute_async_v3(int(self.stream)):
                raise BackendError("TensorRT execute_async_v3 failed")
            check(rt.cudaStreamSynchronize(self.stream), "cudaStreamSynchronize")
            check(rt.cudaStreamBeginCapture(self.stream, rt.cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal),
                  "cudaStreamBeginCapture")
            self.context.execute_async_v3(int(self.stream))
            self._graph = check(rt.cudaStreamEndCapture(self.stream), "cudaStreamEndCapture")
            self._graph_exec = check(rt.cudaGraphInstantiate(self._graph, 0), "cudaGraphInstantiate")
        check(rt.cudaGraphLaunch(self._graph_exec, self.stream), "cudaGraphLaunch")

    def infer(self, batch: np.ndarray) -> np.ndarray:
        shape = tuple(int(d) for d in batch.shape)
        problem = check_batch(shape, self.profile)
        if problem:
            raise BackendError(problem)
        if shape != self._shape:
            self._set_shape(shape)
        rt = self._rt
        host_in = self._input.view(shape)
        np.copyto(host_in, batch, casting="same_kind")
        host_out = self._output.view(self._out_shape)
        try:
            check(rt.cudaMemcpyAsync(self._input.device, self._input.host_ptr, host_in.nbytes,
                                     rt.cudaMemcpyKind.cudaMemcpyHostToDevice, self.stream), "cudaMemcpyAsync")
            self._enqueue()
            check(rt.cudaMemcpyAsync(self._output.host_ptr, self._output.device, host_out.nbytes,
                                     rt.cudaMemcpyKind.cudaMemcpyDeviceToHost, self.stream), "cudaMemcpyAsync")
            check(rt.cudaStreamSynchronize(self.stream), "cudaStreamSynchronize")
        except CudaError as e:
            raise BackendError(str(e)) from None
        return host_out.astype(np.float32, copy=True)

    def close(self) -> None:
        if getattr(self, "stream", None) is None:
            return
        self._drop_graph()
        self._input.free()
        self._output.free()
        self._rt.cudaStreamDestroy(self.stream)
        self.stream = None
        self.context = self.engine = None
