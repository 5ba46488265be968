"""Engine sidecars (``<engine>.json``) and the check that an engine fits the TensorRT and GPU it is about to run on.

A TensorRT plan runs only on the TensorRT version that built it (unless built version-compatible) and only on GPUs of
the compute capability it was built for (unless built hardware-compatible). Deserializing a mismatched plan fails with
an opaque error, so the runtime calls :func:`check_engine` first and reports what differs and the exact command that
rebuilds the engine. Sidecar layout::

    {"meta": <ModelMeta dict>,
     "engine": {"tensorrt_version", "gpu_name", "compute_capability", "precision", "profile": {"min", "opt", "max"},
                "onnx_sha256", "version_compatible", "hardware_compatibility", "built_at", "onnx_path", "dla_core",
                "input_dtype", "output_dtype"}}

No TensorRT or GPU is needed to read, write or compare sidecars; :func:`current_platform` imports them lazily. The
rules (versions, compatibility, the rebuild command) are the C++ runtime's, bound as ``runtime._rules``
(runtime/cpp/rules); this module reads and writes the JSON.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from runtime import _rules
from runtime.atomic import atomic_write_text
from runtime.cuda_util import cuda_modules, gpu_available
from runtime.metadata import MetadataError, ModelMeta

SIDECAR_SUFFIX = ".json"


class EngineInfoError(ValueError):
    """A sidecar is missing or malformed, or the engine does not fit this TensorRT/GPU; one line (plus the command)."""


@dataclass(frozen=True)
class EngineInfo:
    """How and where an engine was built."""

    tensorrt_version: str
    gpu_name: str
    compute_capability: str  # "8.7"
    precision: str  # fp32 | fp16 | int8
    profile: dict[str, list[int]]  # {"min": [N,C,H,W], "opt": [...], "max": [...]}
    onnx_sha256: str = ""
    version_compatible: bool = False
    hardware_compatibility: str | None = None  # None | "ampere_plus" | "same_compute_capability"
    built_at: str = ""
    onnx_path: str = ""
    dla_core: int | None = None
    input_dtype: str = "float32"  # numpy dtype names of the engine's I/O tensors (the ONNX's: fp16 with --fp16-io)
    output_dtype: str = "float32"

    @property
    def max_batch(self) -> int:
        """The largest batch the engine takes (:func:`max_batch` of its profile)."""
        return max_batch(self.profile)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "EngineInfo":
        if not isinstance(d, dict):
            raise EngineInfoError("engine sidecar: 'engine' must be a JSON object")
        known = set(cls.__dataclass_fields__)
        missing = [k for k in ("tensorrt_version", "gpu_name", "compute_capability", "precision", "profile")
                   if k not in d]
        if missing:
            raise EngineInfoError(f"engine sidecar lacks {', '.join(missing)}")
        info = cls(**{k: v for k, v in d.items() if k in known})  # unknown keys: written by a newer toolkit
        profile = info.profile
        if not isinstance(profile, dict) or any(
                not isinstance(profile.get(k), list) or len(profile[k]) != 4 for k in ("min", "opt", "max")):
            raise EngineInfoError("engine sidecar: profile must hold min/opt/max shapes of 4 dimensions")
        return info


@dataclass(frozen=True)
class Platform:
    """The TensorRT and GPU an engine is about to run on; None where unknown."""

    tensorrt_version: str | None = None
    gpu_name: str | None = None
    compute_capability: str | None = None


@dataclass(frozen=True)
class Compatibility:
    """The outcome of :func:`check_compatibility`."""

    problems: tuple[str, ...] = ()  # the engine will not load
    warnings: tuple[str, ...] = ()  # it loads but may run slower or TensorRT will warn
    rebuild_command: str = ""

    @property
    def ok(self) -> bool:
        return not self.problems

    def message(self, engine_path: str | os.PathLike[str]) -> str:
        """The user-facing text: what differs, then the command that rebuilds the engine."""
        if self.ok:
            return ""
        return (f"engine {engine_path} does not fit this machine: {'; '.join(self.problems)}. "
                f"Rebuild it here with:\n  {self.rebuild_command}")


# --------------------------------------------------------------------------------------------------------------------
# Sidecar I/O


def sidecar_path(engine_path: str | os.PathLike[str]) -> Path:
    """``model.plan`` -> ``model.plan.json``."""
    p = Path(engine_path)
    return p.with_name(p.name + SIDECAR_SUFFIX)


def write_sidecar(engine_path: str | os.PathLike[str], meta: ModelMeta, info: EngineInfo) -> Path:
    """Write ``<engine>.json`` atomically; returns its path."""
    path = sidecar_path(engine_path)
    payload = {"meta": json.loads(meta.to_json()), "engine": asdict(info)}
    atomic_write_text(path, json.dumps(payload, indent=2, sort_keys=True) + "\n")
    return path


def read_sidecar(engine_path: str | os.PathLike[str]) -> tuple[ModelMeta, EngineInfo]:
    """Read ``<engine>.json`` -> (model metadata, build info); :class:`EngineInfoError` says what is wrong."""
    path = sidecar_path(engine_path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise EngineInfoError(
            f"engine {engine_path} has no metadata sidecar ({path.name}); engines built by "
            "`python -m export engine MODEL.onnx -o ENGINE` carry one: rebuild the engine with it") from None
    except OSError as e:
        raise EngineInfoError(f"cannot read engine sidecar {path}: {e.strerror or e}") from None
    try:
        d = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise EngineInfoError(f"engine sidecar {path} is not valid JSON: {e}") from None
    if not isinstance(d, dict) or "meta" not in d or "engine" not in d:
        raise EngineInfoError(f"engine sidecar {path} must hold 'meta' and 'engine' objects")
    try:
        meta = ModelMeta.from_dict(d["meta"])
    except MetadataError as e:
        raise EngineInfoError(f"engine sidecar {path}: {e}") from None
    try:
        info = EngineInfo.from_dict(d["engine"])
    except TypeError as e:
        raise EngineInfoError(f"engine sidecar {path} is malformed: {e}") from None
    return meta, info


# --------------------------------------------------------------------------------------------------------------------
# Compatibility (pure)


def _native_info(info: EngineInfo) -> Any:
    n = _rules.EngineInfo()
    n.tensorrt_version, n.gpu_name = str(info.tensorrt_version), str(info.gpu_name)
    n.compute_capability, n.precision = str(info.compute_capability), str(info.precision)
    n.profile = [[int(d) for d in info.profile[k]] for k in ("min", "opt", "max")]
    n.version_compatible = bool(info.version_compatible)
    n.hardware_compatibility = info.hardware_compatibility or None
    n.onnx_path, n.dla_core = info.onnx_path or "", info.dla_core
    return n


def version_tuple(text: str) -> list[int]:
    """The first four runs of digits of a version: ``"10.3.0.26"`` -> [10, 3, 0, 26]."""
    return _rules.version_tuple(str(text))


def version_compatible_ok(built: str, running: str) -> bool:
    """Whether a version-compatible plan built by TensorRT ``built`` runs on ``running``: forward only, from 8.6 on,
    within a major version, plus the two documented cross-major pairs 8 -> 10 and 10 -> 11."""
    return _rules.version_compatible_ok(str(built), str(running))


def rebuild_command(info: EngineInfo, engine_path: str | os.PathLike[str]) -> str:
    """The ``python -m export engine`` command that rebuilds this engine with the same settings."""
    return _rules.rebuild_command(_native_info(info), str(engine_path))


def check_compatibility(info: EngineInfo, platform: Platform, engine_path: str | os.PathLike[str]) -> Compatibility:
    """Compare an engine's build info with the TensorRT/GPU it is about to run on (pure; unknown fields are skipped)."""
    p = _rules.Platform()
    p.tensorrt_version = platform.tensorrt_version or None
    p.gpu_name = platform.gpu_name or None
    p.compute_capability = platform.compute_capability or None
    c = _rules.check_compatibility(_native_info(info), p, str(engine_path))
    return Compatibility(tuple(c.problems), tuple(c.warnings), c.rebuild_command)


def max_batch(profile: Mapping[str, Sequence[int]]) -> int:
    """The largest batch an engine takes: its optimization profile's ({"min", "opt", "max"} N×C×H×W) maximum N."""
    return int(profile["max"][0])


def needs_host_code(info: EngineInfo) -> bool:
    """Version-compatible plans embed a lean runtime: the loader must set ``runtime.engine_host_code_allowed = True``
    (TensorRT ≥ 8.6) before deserializing them, and only for trusted plans."""
    return info.version_compatible


def check_engine(engine_path: str | os.PathLike[str], platform: Platform) -> tuple[ModelMeta, EngineInfo, Compatibility]:
    """Read the sidecar and compare it with ``platform``; raise :class:`EngineInfoError` (with the rebuild command)
    when the engine cannot run here. Returns (meta, info, compatibility) so callers can print the warnings."""
    meta, info = read_sidecar(engine_path)
    compat = check_compatibility(info, platform, engine_path)
    if not compat.ok:
        raise EngineInfoError(compat.message(engine_path))
    return meta, info, compat


# --------------------------------------------------------------------------------------------------------------------
# The running platform (lazy imports; no GPU or TensorRT needed to call it)


def gpu_properties(device: int = 0) -> tuple[str, str] | None:
    """(GPU name, "major.minor") of a CUDA device through cuda-python, or None without a driver/GPU/cuda-python."""
    if not gpu_available():
        return None
    _, cudart, _ = cuda_modules()
    err, props = cudart.cudaGetDeviceProperties(device)
    if int(err) != 0 or props is None:
        return None
    name = props.name
    if isinstance(name, (bytes, bytearray)):
        name = bytes(name).split(b"\0", 1)[0].decode(errors="replace")
    return str(name).strip(), f"{props.major}.{props.minor}"


def current_platform(device: int = 0) -> Platform:
    """The installed TensorRT version and the GPU's name and compute capability (None where absent)."""
    try:
        import tensorrt as trt
        version = str(trt.__version__)
    except ImportError:
        version = None
    gpu = gpu_properties(device)
    return Platform(version, gpu[0] if gpu else None, gpu[1] if gpu else None)
