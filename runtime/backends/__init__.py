"""Open a model with the right inference backend: ``open_backend(model, backend="auto")``.

``auto`` picks TensorRT for an engine file when a GPU and the ``tensorrt`` package are there, and ONNX Runtime for an
ONNX model; :func:`select_backend` is the pure decision and says which it picked and why.
"""
from __future__ import annotations

import importlib.util
import logging
import os
from pathlib import Path

from runtime import named
from runtime.backends.base import Backend, BackendError
from runtime.backends.ort import OnnxRuntimeBackend
from runtime.backends.tensorrt import TensorRTBackend
from runtime.backends.triton import TritonBackend
from runtime.cuda_util import gpu_available
from runtime.engine_info import EngineInfoError, read_sidecar

__all__ = ["Backend", "BackendError", "BACKENDS", "ENGINE_SUFFIXES", "open_backend", "resolve_model", "select_backend"]

log = logging.getLogger(__name__)

BACKENDS = ("auto", "onnxruntime", "tensorrt", "triton")
ENGINE_SUFFIXES = (".plan", ".engine", ".trt")
# Training checkpoints (PyTorch, the official Caffe release): the export turns them into ONNX.
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt", ".caffemodel")
_ALIASES = {"ort": "onnxruntime", "onnx": "onnxruntime", "trt": "tensorrt"}


def select_backend(model_path: str | os.PathLike, requested: str, has_gpu: bool, has_tensorrt: bool) -> tuple[str, str]:
    """``(backend name, reason)`` for a model file. The caller passes what the machine has; an engine's sidecar is
    read only to name its ONNX model in an error.

    Raises :class:`BackendError` when the requested backend cannot run this model here."""
    requested = _ALIASES.get(requested, requested)
    if requested not in BACKENDS:
        raise BackendError(f"unknown backend {requested!r} (choose from {', '.join(BACKENDS)})")
    if requested == "triton":
        return "triton", "requested: the model runs on a Triton Inference Server"
    suffix = Path(model_path).suffix.lower()
    is_engine = suffix in ENGINE_SUFFIXES
    missing = [what for what, ok in (("a CUDA GPU", has_gpu), ("the tensorrt Python package", has_tensorrt)) if not ok]
    if is_engine:
        if requested == "onnxruntime":
            raise BackendError(f"{model_path} is a TensorRT engine; ONNX Runtime needs the .onnx model it was built "
                               f"from: {onnx_hint(model_path)}")
        if missing:
            raise BackendError(f"{model_path} is a TensorRT engine, which needs {' and '.join(missing)}; none here: "
                               f"{onnx_hint(model_path)}")
        return "tensorrt", f"{'requested' if requested == 'tensorrt' else 'auto'}: TensorRT engine file and a GPU"
    if suffix in CHECKPOINT_SUFFIXES:
        raise BackendError(f"{model_path} is a checkpoint; export it first: python -m export onnx {model_path} "
                           f"-o model.onnx")
    if suffix != ".onnx":
        raise BackendError(f"{model_path}: unknown model type {suffix or '(no suffix)'!r} "
                           f"(.onnx, or an engine: {', '.join(ENGINE_SUFFIXES)})")
    if requested == "tensorrt":
        raise BackendError(f"{model_path} is an ONNX model; build an engine first: "
                           f"python -m export engine {model_path} -o model.plan")
    if requested == "onnxruntime":
        return "onnxruntime", "requested"
    if missing:
        lacks = " and ".join(f"no {m.removeprefix('a ').removeprefix('the ')}" for m in missing)
        return "onnxruntime", f"auto: ONNX model, and TensorRT would need an engine file; this machine has {lacks}"
    return "onnxruntime", "auto: ONNX model (pass a TensorRT engine file to use TensorRT)"


def onnx_hint(engine_path: str | os.PathLike) -> str:
    """How to run an engine's model without TensorRT: the ONNX file its sidecar names, or how to get one."""
    try:
        onnx = read_sidecar(engine_path)[1].onnx_path
    except EngineInfoError:
        onnx = ""
    export = "python -m export onnx CHECKPOINT -o model.onnx"
    if onnx and Path(onnx).is_file():
        return f"run the ONNX model it was built from instead: --model {onnx}"
    if onnx:
        return (f"run the ONNX model it was built from instead: --model {onnx} (not found here: copy it, or export "
                f"the checkpoint again: {export})")
    return f"run its ONNX model instead: --model MODEL.onnx (export one from the checkpoint: {export})"


def resolve_model(model: str | os.PathLike) -> Path:
    """A model path: a name such as ``demo`` (:mod:`runtime.named`) stands for its model file; anything else is a
    path."""
    return Path(named.resolve(model, "model", BackendError))


def open_backend(model: str | os.PathLike, backend: str = "auto", **options) -> Backend:
    """Load ``model`` (a path, or ``demo``) with ``backend`` (auto, onnxruntime, tensorrt, triton).

    ``options`` go to the backend: ``meta=ModelMeta(...)`` overrides the model's own metadata (for models exported
    elsewhere); onnxruntime takes ``device`` (auto/cpu/cuda/tensorrt), ``providers``, ``threads``; tensorrt takes
    ``cuda_graph``; triton takes ``url`` and ``protocol``. The returned backend's ``reason`` says why it was chosen."""
    backend = _ALIASES.get(backend, backend)
    path = resolve_model(model) if backend != "triton" else model
    has_trt = importlib.util.find_spec("tensorrt") is not None
    name, reason = select_backend(path, backend, has_gpu=gpu_available() if backend != "onnxruntime" else False,
                                  has_tensorrt=has_trt)
    if name == "onnxruntime":
        instance: Backend = OnnxRuntimeBackend(path, **options)
    elif name == "tensorrt":
        instance = TensorRTBackend(path, **options)
    else:
        instance = TritonBackend(model, **options)
    log.info("backend %s (%s)", name, reason)
    instance.reason = reason
    return instance
