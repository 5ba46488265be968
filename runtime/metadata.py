"""Model metadata: what the runtime needs to run a DeepLab v2 model, carried inside ONNX files and engine sidecars.

One schema for every artifact. ONNX stores it as the metadata property ``deeplab`` (a JSON string); a TensorRT engine
stores it in a sidecar ``<engine>.json``. Writers call :meth:`ModelMeta.to_json`; readers call :meth:`ModelMeta.from_json`,
which validates every field and raises :class:`MetadataError` with a one-line reason.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Mapping

SCHEMA_VERSION = 1
# Where artifacts carry the ModelMeta JSON: the ONNX metadata property, and the parameter of every Triton model config.
ONNX_METADATA_KEY = "deeplab"
TRITON_META_PARAMETER = "deeplab_meta"

# The reference Caffe DeepLab v2 preprocessing: BGR, 0..255, per-channel mean subtraction, no scaling.
CAFFE_BGR_MEAN = (104.008, 116.669, 122.675)


class MetadataError(ValueError):
    """Model metadata is missing, corrupt or inconsistent."""


@dataclass(frozen=True)
class ModelMeta:
    """Everything between the raw image and the network, and between the network and labels.

    ``pixel = (image[channel_order] - mean) * scale`` per channel, NCHW float32 in, logits at 1/``output_stride`` out.
    """

    class_names: tuple[str, ...]
    channel_order: str = "BGR"
    mean: tuple[float, float, float] = CAFFE_BGR_MEAN
    scale: tuple[float, float, float] = (1.0, 1.0, 1.0)
    output_stride: int = 8
    align_corners: bool = False
    input_name: str = "image"
    output_name: str = "logits"
    precision: str = "fp32"
    msc: bool = False
    source_sha256: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    @property
    def crf(self) -> tuple[str, dict[str, float]]:
        """The model's own CRF settings (``extra["crf"]``: a preset name, or an object of a ``preset`` and the
        fields it overrides) as (preset name or "", {field: number}); what ``crf="default"`` runs."""
        value = self.extra.get("crf")
        if isinstance(value, str):
            return value, {}
        if not isinstance(value, dict):
            return "", {}
        return str(value.get("preset") or ""), {k: float(v) for k, v in value.items() if k != "preset"}

    def to_json(self) -> str:
        d = asdict(self)
        d["schema_version"] = SCHEMA_VERSION
        return json.dumps(d, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> "ModelMeta":
        try:
            d = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise MetadataError(f"model metadata is not valid JSON: {e}") from None
        if not isinstance(d, dict):
            raise MetadataError("model metadata must be a JSON object")
        return cls.from_dict(d)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ModelMeta":
        if not isinstance(d, dict):
            raise MetadataError("model metadata must be a JSON object")
        d = dict(d)
        version = d.pop("schema_version", SCHEMA_VERSION)
        if version != SCHEMA_VERSION:
            raise MetadataError(f"model metadata schema version {version} is not supported (expected {SCHEMA_VERSION})")
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(d) - known)
        if unknown:
            raise MetadataError(f"model metadata has unknown fields: {', '.join(unknown)}")
        if "class_names" not in d:
            raise MetadataError("model metadata lacks class_names")
        for name in ("class_names", "mean", "scale"):  # JSON arrays; a string would silently split into characters
            if name in d and not isinstance(d[name], (list, tuple)):
                raise MetadataError(f"{name} must be a list, got {type(d[name]).__name__}")
        try:
            meta = cls(**{k: (tuple(v) if k in ("class_names", "mean", "scale") else v) for k, v in d.items()})
        except TypeError as e:
            raise MetadataError(f"model metadata is malformed: {e}") from None
        meta.validate()
        return replace(meta, mean=tuple(float(x) for x in meta.mean), scale=tuple(float(x) for x in meta.scale))

    def validate(self) -> None:
        """Raise :class:`MetadataError` unless every field has a usable type and value."""
        if self.n_classes < 1:
            raise MetadataError("model metadata lists no classes")
        if not all(isinstance(c, str) and c for c in self.class_names):
            raise MetadataError("class_names must be non-empty strings")
        if not isinstance(self.channel_order, str) or sorted(self.channel_order) != ["B", "G", "R"]:
            raise MetadataError(f"channel_order must be a permutation of 'BGR', got {self.channel_order!r}")
        for name in ("mean", "scale"):
            v = getattr(self, name)
            if len(v) != 3 or not all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)
                                      for x in v):
                raise MetadataError(f"{name} must be 3 finite numbers, got {list(v)!r}")
        if any(x == 0 for x in self.scale):
            raise MetadataError(f"scale must not contain 0, got {list(self.scale)!r}")
        if not isinstance(self.output_stride, int) or isinstance(self.output_stride, bool) or self.output_stride < 1:
            raise MetadataError(f"output_stride must be a positive integer, got {self.output_stride!r}")
        if self.precision not in ("fp32", "fp16", "int8"):
            raise MetadataError(f"precision must be fp32, fp16 or int8, got {self.precision!r}")
        if not isinstance(self.align_corners, bool) or not isinstance(self.msc, bool):
            raise MetadataError("align_corners and msc must be booleans")
        for name in ("input_name", "output_name"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise MetadataError(f"{name} must be a non-empty string")
        if not isinstance(self.source_sha256, str):
            raise MetadataError("source_sha256 must be a string")
        if not isinstance(self.extra, dict):
            raise MetadataError(f"extra must be an object, got {type(self.extra).__name__}")
        _check_crf(self.extra.get("crf"))


def _check_crf(value: Any) -> None:
    """``extra["crf"]``: absent, a preset name, or an object of a ``preset`` name and numeric (or boolean) fields."""
    if value is None or isinstance(value, str):
        return
    if not isinstance(value, dict):
        raise MetadataError("model metadata is malformed: extra.crf must be a preset name or an object")
    for key, v in value.items():
        if key == "preset" and isinstance(v, str):
            continue
        if not isinstance(v, (int, float)) or (key != "half_rows" and isinstance(v, bool)):
            raise MetadataError(f"model metadata is malformed: extra.crf.{key} must be a number")


def read_meta(properties: Mapping[str, str], key: str, source: str, remedy: str) -> ModelMeta:
    """The :class:`ModelMeta` stored as JSON under ``key`` in ``properties`` (an ONNX model's metadata properties under
    :data:`ONNX_METADATA_KEY`, a Triton config's parameters under :data:`TRITON_META_PARAMETER`).

    A :class:`MetadataError` names ``source``; when the key is absent it ends with ``remedy`` (how to get it)."""
    text = properties.get(key)
    if text is None:
        raise MetadataError(f"{source} has no '{key}' metadata: {remedy}")
    try:
        return ModelMeta.from_json(text)
    except MetadataError as e:
        raise MetadataError(f"{source} has corrupt '{key}' metadata: {e}") from None
