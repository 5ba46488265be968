"""What each TensorRT version can do, and the build decisions that follow: pure functions, no ``import tensorrt``.

Everything version-dependent in the engine builder is decided here from a :class:`TrtFeatures` value, which
:func:`probe` reads from the installed module and :func:`documented_features` derives from a version number (NVIDIA's
documented API of 8.5, 8.6, 10.x and 11.x), so every decision is unit-tested for every version users run.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

from runtime.engine_info import version_tuple

PRECISIONS = ("fp32", "fp16", "int8")
HARDWARE_LEVELS = ("ampere_plus", "same_compute_capability")
CALIBRATORS = {"entropy": "IInt8EntropyCalibrator2", "minmax": "IInt8MinMaxCalibrator"}


class CompatError(ValueError):
    """A requested build cannot be done with this TensorRT; the message says what to do instead."""


def parse_version(text: str) -> tuple[int, int, int]:
    """'10.3.0.26' -> (10, 3, 0); missing parts are 0 (the runtime's version_tuple, padded)."""
    parts = version_tuple(str(text))
    if not parts:
        raise ValueError(f"not a TensorRT version: {text!r}")
    return tuple((parts + [0, 0, 0])[:3])  # type: ignore[return-value]


@dataclass(frozen=True)
class TrtFeatures:
    """The parts of a TensorRT Python API that the builder's decisions depend on."""

    version: tuple[int, int, int]
    builder_flags: frozenset[str]  # members of trt.BuilderFlag
    network_flags: frozenset[str]  # members of trt.NetworkDefinitionCreationFlag
    hardware_levels: frozenset[str] = field(default_factory=frozenset)  # members of trt.HardwareCompatibilityLevel
    progress_monitor: bool = False  # trt.IProgressMonitor / config.progress_monitor (10.0+)
    implicit_calibrators: bool = False  # trt.IInt8EntropyCalibrator2 / IInt8MinMaxCalibrator (removed in 11)
    calibration_profile: bool = False  # IBuilderConfig.set_calibration_profile (8.x-10.x, removed in 11)
    parser_error_node_names: bool = False  # ParserError.node_name() / node_operator() (10.0+)

    @property
    def major(self) -> int:
        return self.version[0]

    @property
    def version_text(self) -> str:
        return ".".join(str(v) for v in self.version)


def documented_features(version: str | tuple[int, ...]) -> TrtFeatures:
    """The feature set NVIDIA documents for a TensorRT version (used for planning and tests; a real install is read
    with :func:`probe`)."""
    v = parse_version(version) if isinstance(version, str) else tuple((list(version) + [0, 0, 0])[:3])
    major = v[0]
    flags = {"GPU_FALLBACK", "REFIT", "DEBUG", "TF32"}
    if major < 11:
        flags |= {"FP16", "INT8"}
    if v >= (8, 6, 0):
        flags |= {"VERSION_COMPATIBLE", "EXCLUDE_LEAN_RUNTIME"}
    net = set()
    if major < 11:
        net.add("EXPLICIT_BATCH")
    if major >= 10:
        net.add("STRONGLY_TYPED")
    levels = {"NONE", "AMPERE_PLUS"} if v >= (8, 6, 0) else set()
    if v >= (10, 10, 0):  # absent from the 10.3 bindings, present in 10.13, 10.16 and 11.1
        levels.add("SAME_COMPUTE_CAPABILITY")
    return TrtFeatures(
        version=v,  # type: ignore[arg-type]
        builder_flags=frozenset(flags),
        network_flags=frozenset(net),
        hardware_levels=frozenset(levels),
        progress_monitor=major >= 10,
        implicit_calibrators=major < 11,
        calibration_profile=major < 11,
        parser_error_node_names=major >= 10,
    )


def probe(trt: Any) -> TrtFeatures:
    """Read the features of an imported ``tensorrt`` module (thin: attribute look-ups only)."""
    def members(enum_name: str) -> frozenset[str]:
        enum = getattr(trt, enum_name, None)
        return frozenset(getattr(enum, "__members__", {}) or {}) if enum is not None else frozenset()

    parser_error = getattr(trt, "ParserError", None)
    return TrtFeatures(
        version=parse_version(trt.__version__),
        builder_flags=members("BuilderFlag"),
        network_flags=members("NetworkDefinitionCreationFlag"),
        hardware_levels=members("HardwareCompatibilityLevel"),
        progress_monitor=hasattr(trt, "IProgressMonitor"),
        implicit_calibrators=hasattr(trt, "IInt8EntropyCalibrator2") and hasattr(trt, "IInt8MinMaxCalibrator"),
        calibration_profile=hasattr(getattr(trt, "IBuilderConfig", None), "set_calibration_profile"),
        parser_error_node_names=parser_error is not None and hasattr(parser_error, "node_name"),
    )


# --------------------------------------------------------------------------------------------------------------------
# Decisions


@dataclass(frozen=True)
class BuildPlan:
    """How to build: network creation flags, builder flags, and whether an implicit calibrator is attached."""

    network_flags: tuple[str, ...]
    builder_flags: tuple[str, ...]
    calibrator: str | None = None  # a trt class name from CALIBRATORS, or None
    hardware_level: str | None = None  # a trt.HardwareCompatibilityLevel member, or None
    notes: tuple[str, ...] = ()

    @property
    def strongly_typed(self) -> bool:
        return "STRONGLY_TYPED" in self.network_flags


def onnx_precision_hint(op_types: Iterable[str], float_initializer_types: Iterable[str]) -> str:
    """What precision an ONNX graph carries itself: 'int8' (Q/DQ nodes), 'fp16' (fp16 weights) or 'fp32'."""
    ops = set(op_types)
    if {"QuantizeLinear", "DequantizeLinear"} & ops:
        return "int8"
    if "float16" in set(float_initializer_types):
        return "fp16"
    return "fp32"


def _rebuild_hint(precision: str) -> str:
    if precision == "int8":
        return "make a Q/DQ model first: python -m export int8 MODEL.onnx --calib calib_data/ -o MODEL.int8.onnx"
    return "make an FP16 model first: python -m export fp16 MODEL.onnx -o MODEL.fp16.onnx"


def check_precision(precision: str, onnx_precision: str, calibrator: str | None = None) -> None:
    """Refuse a build whose recorded precision would not be the engine's: what the user asked for against what the
    ONNX carries (on every TensorRT version, so it is checked before TensorRT is imported)."""
    if precision not in PRECISIONS:
        raise CompatError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if onnx_precision not in PRECISIONS:
        raise CompatError(f"unknown ONNX precision {onnx_precision!r}")
    if onnx_precision == "int8" and precision != "int8":
        raise CompatError(f"the ONNX has Q/DQ nodes (INT8): build it with --precision int8, not {precision}")
    if onnx_precision == "fp16" and precision == "fp32":
        raise CompatError("the ONNX has fp16 weights: build it with --precision fp16, or build the FP32 ONNX")
    if onnx_precision == "fp16" and precision == "int8":
        raise CompatError("the ONNX has fp16 weights and no Q/DQ nodes, so an INT8 build of it would be FP16: "
                          "quantize the FP32 ONNX instead (" + _rebuild_hint("int8") + ")")
    if calibrator is not None:
        if calibrator not in CALIBRATORS:
            raise CompatError(f"calibrator must be one of {', '.join(CALIBRATORS)}, got {calibrator!r}")
        if precision != "int8" or onnx_precision != "fp32":
            raise CompatError("implicit calibration (--calib) applies only to --precision int8 on an FP32 ONNX "
                              "without Q/DQ nodes")


def plan_build(
    f: TrtFeatures,
    precision: str,
    onnx_precision: str,
    *,
    calibrator: str | None = None,
    dla_core: int | None = None,
    version_compatible: bool = False,
    hardware_compatibility: str | None = None,
) -> BuildPlan:
    """Decide network flags, builder flags and the calibrator for a build.

    ``precision`` is what the user asked for, ``onnx_precision`` what the ONNX carries (:func:`onnx_precision_hint`).
    Rules (NVIDIA's documented behaviour): EXPLICIT_BATCH only below 10 (deprecated in 10, gone in 11); a network whose
    ONNX carries its precision (Q/DQ or fp16 tensors) is built strongly typed on 10.x with no precision flags (10.x
    rejects them there) and always on 11 (every network is strongly typed, no precision flags exist); on 8.x there is
    no strong typing, so Q/DQ needs the INT8 flag and fp16 tensors the FP16 flag; an FP32 ONNX gets FP16/INT8 builder
    flags on ≤ 10 only, INT8 from an FP32 ONNX needs an implicit calibrator (≤ 10 only).
    """
    check_precision(precision, onnx_precision, calibrator)
    v = f.version_text
    if calibrator is not None and not f.implicit_calibrators:
        raise CompatError(f"TensorRT {v} has no implicit INT8 calibrators (removed in 11): " + _rebuild_hint("int8"))

    network: list[str] = []
    builder: list[str] = []
    notes: list[str] = []
    if f.major < 10:
        network.append("EXPLICIT_BATCH")

    if onnx_precision != "fp32":
        # The ONNX carries its precision.
        if f.major >= 11:
            pass  # strongly typed always; STRONGLY_TYPED is deprecated and ignored there
        elif f.major == 10:
            network.append("STRONGLY_TYPED")
        else:
            builder.append("INT8" if onnx_precision == "int8" else "FP16")
            notes.append(f"TensorRT {v} has no strongly typed networks: the {precision.upper()} flag is set")
    elif precision == "fp16":
        if "FP16" not in f.builder_flags:
            raise CompatError(f"TensorRT {v} has no FP16 builder flag (precision comes from the ONNX): "
                              + _rebuild_hint("fp16"))
        builder.append("FP16")
    elif precision == "int8":
        if calibrator is None:
            raise CompatError("the ONNX has no Q/DQ nodes: " + _rebuild_hint("int8")
                              + (" (or pass --calib DIR for implicit calibration)" if f.implicit_calibrators else ""))
        builder.append("INT8")
        notes.append("implicit INT8 calibration is deprecated since TensorRT 10.1 and removed in 11; "
                     "explicit Q/DQ (python -m export int8) works on every version")

    if dla_core is not None:
        if dla_core < 0:
            raise CompatError(f"--dla-core must be ≥ 0, got {dla_core}")
        if "GPU_FALLBACK" not in f.builder_flags:
            raise CompatError(f"TensorRT {v} has no GPU_FALLBACK builder flag")
        if not dla_supported(f.version):
            raise CompatError(f"TensorRT {v} has no DLA support: 10.7 was the last 10.x release with DLA, and 11.4.1 "
                              "brings it back on Jetson AGX Orin (JetPack 7.2.2 or later); build without --dla-core")
        builder.append("GPU_FALLBACK")
        if precision == "fp32":
            notes.append("DLA runs only FP16/INT8 layers: an FP32 build falls back to the GPU for every layer")
    if version_compatible:
        if "VERSION_COMPATIBLE" not in f.builder_flags:
            raise CompatError(f"version-compatible engines need TensorRT ≥ 8.6 (this is {v})")
        builder.append("VERSION_COMPATIBLE")
    level = None
    if hardware_compatibility is not None:
        level = hardware_level(f, hardware_compatibility)
        if dla_core is not None:
            raise CompatError("hardware compatibility cannot be combined with DLA")
    return BuildPlan(tuple(network), tuple(builder), CALIBRATORS.get(calibrator) if calibrator else None, level,
                     tuple(notes))


def resolve_precision(requested: str | None, onnx_precision: str, calibrating: bool = False) -> str:
    """The precision to build: what the user asked for, else INT8 when calibrating (``--calib``), else what the ONNX
    carries. :func:`plan_build` then refuses a request the ONNX contradicts."""
    if requested is not None:
        return requested
    return "int8" if calibrating else onnx_precision


def dla_supported(version: tuple[int, int, int]) -> bool:
    """Whether a TensorRT release builds for DLA: every release through 10.7, none from 10.8 to 11.4.0, and 11.4.1 on
    (Jetson AGX Orin with JetPack 7.2.2+; NVIDIA's 11.3 migration guide and 11.4.1 release notes)."""
    return version < (10, 8, 0) or version >= (11, 4, 1)


def calibration_profile(
    profile: tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]
) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """The calibration's own profile: min = opt = max = the shape the calibrator feeds (the build profile's opt),
    as NVIDIA's samples give ``config.set_calibration_profile``."""
    opt = tuple(profile[1])
    return opt, opt, opt


def hardware_level(f: TrtFeatures, requested: str) -> str:
    """'ampere_plus' | 'same_compute_capability' -> the trt.HardwareCompatibilityLevel member name, if this version
    has it."""
    if requested not in HARDWARE_LEVELS:
        raise CompatError(f"hardware compatibility must be one of {', '.join(HARDWARE_LEVELS)}, got {requested!r}")
    name = requested.upper()
    if name not in f.hardware_levels:
        have = sorted(x.lower() for x in f.hardware_levels - {"NONE"})
        raise CompatError(f"TensorRT {f.version_text} has no hardware compatibility level {requested}"
                          + (f" (it has: {', '.join(have)})" if have else " (hardware compatibility needs ≥ 8.6)"))
    return name


def network_flags_value(flag_values: dict[str, int], names: Sequence[str]) -> int:
    """The integer for ``builder.create_network(flags)``: OR of ``1 << value`` for each named flag."""
    out = 0
    for name in names:
        out |= 1 << int(flag_values[name])
    return out


# --------------------------------------------------------------------------------------------------------------------
# Parser errors


@dataclass(frozen=True)
class ParserErrorInfo:
    """One ONNX parser error as TensorRT reports it; node_name/op_type are None where this version lacks them."""

    code: str
    desc: str
    node: int = -1
    node_name: str | None = None
    op_type: str | None = None


def format_parser_errors(errors: Sequence[ParserErrorInfo], onnx_nodes: Sequence[tuple[str, str]] = ()) -> str:
    """One line per error: node index, name and operator, and the parser's message. ``onnx_nodes`` is the ONNX graph's
    (name, op_type) list, used to name the node on TensorRT 8.x, whose errors carry only its index."""
    lines = []
    for e in errors:
        name, op = e.node_name, e.op_type
        if (not name or not op) and 0 <= e.node < len(onnx_nodes):
            name = name or onnx_nodes[e.node][0]
            op = op or onnx_nodes[e.node][1]
        where = f"node {e.node}" if e.node >= 0 else "graph"
        if name:
            where += f" '{name}'"
        if op:
            where += f" ({op})"
        lines.append(f"  {where}: {e.desc} [{e.code}]")
    return f"the ONNX parser reported {len(errors)} error(s):\n" + "\n".join(lines)


# --------------------------------------------------------------------------------------------------------------------
# Shapes


def parse_shape(text: str) -> tuple[int, ...]:
    """'1x3x512x512' -> (1, 3, 512, 512)."""
    try:
        dims = tuple(int(d) for d in text.lower().replace("*", "x").split("x"))
    except ValueError:
        raise CompatError(f"a shape is NxCxHxW with positive integers, got {text!r}") from None
    if len(dims) != 4 or min(dims) < 1:
        raise CompatError(f"a shape is NxCxHxW with positive integers, got {text!r}")
    return dims


def resolve_profile(
    min_shape: tuple[int, ...] | None,
    opt_shape: tuple[int, ...] | None,
    max_shape: tuple[int, ...] | None,
    stride: int = 8,
    max_batch: int | None = None,
) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """Fill in an optimization profile (defaults: 1×3×256×256 .. 1×3×512×512 .. 1×3×1024×1024), check
    min ≤ opt ≤ max per dimension, 3 channels, H and W multiples of the output stride (the runtime pads to that).

    ``max_batch`` N sets the batch range: N from 1 (min) to N (opt and max), so batches of up to N frames run and
    TensorRT tunes for full batches; a given shape whose N says otherwise is an error."""
    if max_batch is not None:
        if max_batch < 1:
            raise CompatError(f"--max-batch must be ≥ 1, got {max_batch}")
        for name, s, n in (("min", min_shape, 1), ("opt", opt_shape, max_batch), ("max", max_shape, max_batch)):
            if s is not None and s[0] != n:
                raise CompatError(f"--max-batch {max_batch} sets the batch range 1..{max_batch}: --{name}-shape "
                                  f"{'x'.join(map(str, s))} must have N = {n} (or leave N to --max-batch)")
    opt = opt_shape or max_shape or min_shape or (1, 3, 512, 512)
    if max_batch is not None:
        opt = (max_batch, *opt[1:])
    mn = min_shape or tuple(min(o, d) for o, d in zip(opt, (1, 3, 256, 256)))
    mx = max_shape or tuple(max(o, d) for o, d in zip(opt, (1, 3, 1024, 1024)))
    for name, s in (("min", mn), ("opt", opt), ("max", mx)):
        if s[1] != 3:
            raise CompatError(f"--{name}-shape must have 3 channels, got {'x'.join(map(str, s))}")
        if s[2] % stride or s[3] % stride:
            raise CompatError(f"--{name}-shape H and W must be multiples of the output stride {stride}, "
                              f"got {'x'.join(map(str, s))}")
    if not all(a <= b <= c for a, b, c in zip(mn, opt, mx)):
        raise CompatError("the profile needs min ≤ opt ≤ max in every dimension, got "
                          f"{'x'.join(map(str, mn))} / {'x'.join(map(str, opt))} / {'x'.join(map(str, mx))}")
    return tuple(mn), tuple(opt), tuple(mx)
