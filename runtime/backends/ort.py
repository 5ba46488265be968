"""ONNX Runtime backend: .onnx models (FP32, FP16, INT8 Q/DQ). CPU everywhere; the CUDA and TensorRT execution
providers where onnxruntime-gpu provides them."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from runtime.backends.base import Backend, BackendError
from runtime.metadata import ONNX_METADATA_KEY, MetadataError, ModelMeta, read_meta

# The providers ``device="auto"`` uses, best first. The TensorRT EP is opt-in (device="tensorrt"): it builds an
# engine on first use, which takes minutes; the TensorRT backend with a prebuilt engine is the better path.
_AUTO_PROVIDERS = ("CUDAExecutionProvider", "CPUExecutionProvider")
_DEVICE_PROVIDERS = {
    "cpu": ("CPUExecutionProvider",),
    "cuda": ("CUDAExecutionProvider", "CPUExecutionProvider"),
    "tensorrt": ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"),
}


def choose_providers(available: Sequence[str], device: str = "auto") -> list[str]:
    """Execution providers for ``device`` (auto, cpu, cuda, tensorrt) among those onnxruntime offers. A device whose
    provider is missing is an error, not a silent CPU fallback."""
    if device == "auto":
        return [p for p in _AUTO_PROVIDERS if p in available]
    if device not in _DEVICE_PROVIDERS:
        raise BackendError(f"unknown onnxruntime device {device!r} (auto, cpu, cuda or tensorrt)")
    wanted = _DEVICE_PROVIDERS[device]
    if wanted[0] not in available:
        raise BackendError(
            f"onnxruntime here has no {wanted[0]} (available: {', '.join(available)}); install onnxruntime-gpu"
        )
    return [p for p in wanted if p in available]


def read_onnx_meta(custom_metadata: dict[str, str], source: str) -> ModelMeta:
    """The ModelMeta stored under the ``deeplab`` metadata key; a clear BackendError when absent or corrupt."""
    try:
        return read_meta(custom_metadata, ONNX_METADATA_KEY, source, "preprocessing and class names are unknown; "
                         "export it with `python -m export onnx`, or pass meta=ModelMeta(...) to open_backend/Segmenter")
    except MetadataError as e:
        raise BackendError(str(e)) from None


class OnnxRuntimeBackend(Backend):
    """A model in an ONNX Runtime session. ``session.run`` is thread-safe, so ``infer`` may be called concurrently.
    ``spin=True`` lets idle intra-op threads busy-wait (lower latency for a lone model, but it steals CPU from the
    pipeline's other stages, hence off by default)."""

    name = "onnxruntime"

    def __init__(self, path: str | os.PathLike, *, device: str = "auto", providers: Sequence[str] | None = None,
                 threads: int | None = None, spin: bool = False, meta: ModelMeta | None = None) -> None:
        import onnxruntime as ort

        path = Path(path)
        if not path.is_file():
            raise BackendError(f"model file not found: {path}")
        if path.stat().st_size == 0:
            raise BackendError(f"model file is empty: {path}")
        options = ort.SessionOptions()
        options.log_severity_level = 3
        if threads:
            options.intra_op_num_threads = threads
        if not spin:  # idle worker threads would busy-wait for the next frame, taking CPU from the other stages
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            options.add_session_config_entry("session.inter_op.allow_spinning", "0")
        self.providers = list(providers) if providers else choose_providers(ort.get_available_providers(), device)
        try:
            self.session = ort.InferenceSession(str(path), options, providers=self.providers)
        except Exception as e:  # noqa: BLE001 - onnxruntime raises its own Fail/InvalidProtobuf/... classes
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise BackendError(f"cannot load ONNX model {path}: {first}") from None
        self.meta = meta if meta is not None else read_onnx_meta(
            self.session.get_modelmeta().custom_metadata_map, str(path))
        inputs = {i.name: i for i in self.session.get_inputs()}
        outputs = {o.name: o for o in self.session.get_outputs()}
        if self.meta.input_name not in inputs or self.meta.output_name not in outputs:
            raise BackendError(
                f"{path}: metadata names input {self.meta.input_name!r} and output {self.meta.output_name!r}, "
                f"the graph has inputs {sorted(inputs)} and outputs {sorted(outputs)}"
            )
        channels = outputs[self.meta.output_name].shape[1] if len(outputs[self.meta.output_name].shape) == 4 else None
        if isinstance(channels, int) and channels != self.meta.n_classes:
            raise BackendError(f"{path}: the graph outputs {channels} classes, "
                               f"its metadata lists {self.meta.n_classes}")
        # FP16 models exported with fp16 inputs (not the default) take half-precision batches.
        self._input_dtype = np.float16 if inputs[self.meta.input_name].type == "tensor(float16)" else np.float32
        self.path = path

    @property
    def device(self) -> str:
        return self.providers[0].replace("ExecutionProvider", "") if self.providers else "CPU"

    def infer(self, batch: np.ndarray) -> np.ndarray:
        if batch.ndim != 4 or batch.shape[1] != 3:
            raise BackendError(f"input must be N×3×H×W, got shape {batch.shape}")
        batch = np.ascontiguousarray(batch, dtype=self._input_dtype)
        try:
            (logits,) = self.session.run([self.meta.output_name], {self.meta.input_name: batch})
        except Exception as e:  # noqa: BLE001 - onnxruntime raises its own Fail/RuntimeException/... classes
            raise BackendError(f"onnxruntime failed on input {batch.shape}: {str(e).strip().splitlines()[0]}") from None
        return np.asarray(logits, dtype=np.float32)

    def close(self) -> None:
        self.session = None  # type: ignore[assignment]
