"""`python -m export engine`: ONNX -> TensorRT engine (plan) + sidecar metadata, on TensorRT 8.5 through 11.

Thin TensorRT code: every version-dependent decision (network flags, precision flags, calibrators, compatibility
levels, DLA, parser error details) comes from the pure functions in :mod:`export.trt_compat`. The plan is written
atomically next to ``<engine>.json`` (:mod:`runtime.engine_info`), which the runtime checks before deserializing.

TensorRT's Python binding catches every exception raised in a progress-monitor or calibrator callback and prints it,
so Ctrl-C there would surface as a failed build: during the build, SIGINT only sets a flag (:class:`BuildInterrupt`)
that the callbacks read to cancel, and the interruption is raised once ``build_serialized_network`` returns.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from export.calibration import CalibrationCache, fixed_shape_batches, implicit_cache_key, open_calibration
from export.onnx_export import sha256_file
from export.onnx_graph import default_output, io_tensor, load_onnx, read_meta
from export.trt_compat import (BuildPlan, ParserErrorInfo, TrtFeatures, calibration_profile, check_precision,
                               format_parser_errors, network_flags_value, onnx_precision_hint, parse_shape, plan_build,
                               probe, resolve_precision, resolve_profile)
from runtime.atomic import atomic_write_bytes, make_dirs
from runtime.backends import resolve_model
from runtime.cuda_util import check, cuda_modules
from runtime.engine_info import EngineInfo, gpu_properties, write_sidecar
from runtime.metadata import ModelMeta

INSTALL_HINT = ("TensorRT is not installed: on a GPU server `pip install -e \".[gpu-cu13]\"` (driver ≥ 580) or "
                "`pip install -e \".[gpu-cu12]\"` (CUDA 12 drivers); on Jetson it comes with JetPack "
                "(apt install python3-libnvinfer)")
Profile = tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]


@dataclass(frozen=True)
class BuildOptions:
    """How to build an engine; the defaults build what the ONNX carries over the default profile."""

    precision: str | None = None  # None: what the ONNX carries (int8 when calibrating)
    min_shape: tuple[int, ...] | None = None
    opt_shape: tuple[int, ...] | None = None
    max_shape: tuple[int, ...] | None = None
    max_batch: int | None = None  # batch range 1..N (profile N: min 1, opt and max N)
    workspace_mib: int | None = None
    timing_cache: Path | None = None
    calib: Path | None = None  # implicit INT8 calibration data (image directory or load_data() script)
    calibrator: str = "entropy"
    calib_cache: Path | None = None  # default: <engine>.calib.cache
    max_images: int | None = None
    dla_core: int | None = None
    version_compatible: bool = False
    hardware_compatibility: str | None = None

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "BuildOptions":
        def path(value: str | None) -> Path | None:
            return Path(value) if value else None

        def shape(value: str | None) -> tuple[int, ...] | None:
            return parse_shape(value) if value else None

        return cls(precision=args.precision, min_shape=shape(args.min_shape), opt_shape=shape(args.opt_shape),
                   max_shape=shape(args.max_shape), max_batch=args.max_batch, workspace_mib=args.workspace,
                   timing_cache=path(args.timing_cache), calib=path(args.calib), calibrator=args.calibrator,
                   calib_cache=path(args.calib_cache), max_images=args.max_images, dla_core=args.dla_core,
                   version_compatible=args.version_compatible, hardware_compatibility=args.hardware_compatibility)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="ONNX model (or demo): FP32, FP16 (export fp16) or INT8 Q/DQ (export int8)")
    p.add_argument("-o", "--output", help="engine file (default: MODEL.plan)")
    p.add_argument("--precision", choices=("fp32", "fp16", "int8"), default=None,
                   help="default: what the ONNX carries (Q/DQ -> int8, fp16 weights -> fp16, else fp32; int8 with "
                        "--calib); a precision the ONNX contradicts is refused")
    p.add_argument("--min-shape", metavar="NxCxHxW", help="optimization profile minimum (default 1x3x256x256)")
    p.add_argument("--opt-shape", metavar="NxCxHxW", help="shape TensorRT tunes for (default 1x3x512x512)")
    p.add_argument("--max-shape", metavar="NxCxHxW", help="optimization profile maximum (default 1x3x1024x1024)")
    p.add_argument("--max-batch", type=int, metavar="N",
                   help="batches of 1 to N frames (the profile's N: min 1, opt and max N; recorded in the sidecar)")
    p.add_argument("--workspace", type=int, metavar="MiB", help="builder workspace limit (default: TensorRT's)")
    p.add_argument("--timing-cache", metavar="FILE", help="timing cache, read if present and written back")
    p.add_argument("--calib", metavar="DIR|FILE.py",
                   help="implicit INT8 calibration of an FP32 ONNX (TensorRT ≤ 10 only; prefer `export int8`)")
    p.add_argument("--calibrator", choices=("entropy", "minmax"), default="entropy",
                   help="implicit calibrator (entropy = IInt8EntropyCalibrator2, minmax = IInt8MinMaxCalibrator)")
    p.add_argument("--calib-cache", metavar="FILE",
                   help="implicit calibration cache (default: ENGINE.calib.cache), reused only for the same ONNX, "
                        "data, preprocessing, calibrator and TensorRT version (FILE.key.json)")
    p.add_argument("--max-images", type=int, help="use at most N calibration images")
    p.add_argument("--dla-core", type=int, metavar="N", help="run on DLA core N, with GPU fallback")
    p.add_argument("--version-compatible", action="store_true",
                   help="engine runs on later TensorRT versions too (≥ 8.6; 10 -> 11, 8 -> 10)")
    p.add_argument("--hardware-compatibility", nargs="?", const="ampere_plus", default=None,
                   choices=("ampere_plus", "same_compute_capability"),
                   help="engine runs on other GPUs: ampere_plus (default when given) or same_compute_capability "
                        "(TensorRT ≥ 10.10)")


def run(args: argparse.Namespace) -> int:
    options = BuildOptions.from_args(args)
    model = resolve_model(args.model)
    output = Path(args.output) if args.output else default_output(args.model, ".plan")
    info = build_engine(model, output, options)
    print(f"wrote {output} (+ {output.name}.json): {info.precision}, TensorRT {info.tensorrt_version}, "
          f"{info.gpu_name} (compute capability {info.compute_capability}), profile "
          f"{' .. '.join('x'.join(map(str, info.profile[k])) for k in ('min', 'opt', 'max'))}")
    return 0


def import_tensorrt() -> Any:
    try:
        import tensorrt as trt
    except ImportError:
        raise RuntimeError(INSTALL_HINT) from None
    return trt


# --------------------------------------------------------------------------------------------------------------------
# Ctrl-C and callback errors


class BuildInterrupt:
    """Ctrl-C and callback failures during a build, kept for after it.

    Inside ``with``, SIGINT sets :attr:`requested` instead of raising (main thread only; elsewhere the handler stays);
    callbacks call :meth:`fail` with an exception they caught and read :attr:`cancelled`. :meth:`raise_pending`, after
    the build returns, raises KeyboardInterrupt or the callback's exception."""

    def __init__(self) -> None:
        self.requested = False
        self.error: BaseException | None = None
        self._installed = False
        self._previous: Any = None

    @property
    def cancelled(self) -> bool:
        return self.requested or self.error is not None

    def fail(self, error: BaseException) -> None:
        if isinstance(error, KeyboardInterrupt):
            self.requested = True
        elif self.error is None:
            self.error = error

    def _on_sigint(self, signum: int, frame: Any) -> None:
        self.requested = True

    def __enter__(self) -> "BuildInterrupt":
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._on_sigint)
            self._installed = True
        return self

    def __exit__(self, *exc: object) -> None:
        if self._installed:
            # None: the handler was set outside Python; the default is what such a process gets back.
            signal.signal(signal.SIGINT, self._previous if self._previous is not None else signal.default_int_handler)
            self._installed = False

    def raise_pending(self) -> None:
        if self.requested:
            raise KeyboardInterrupt
        if self.error is not None:
            raise self.error


# --------------------------------------------------------------------------------------------------------------------
# Progress


def make_progress_monitor(trt: Any, interrupt: BuildInterrupt) -> Any:
    """An ``IProgressMonitor`` (TensorRT ≥ 10) that shows one tqdm bar per optimizer phase and cancels the build once
    ``interrupt`` is set."""
    from tqdm import tqdm

    class Monitor(trt.IProgressMonitor):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            trt.IProgressMonitor.__init__(self)
            self._lock = threading.Lock()
            self._bars: dict[str, Any] = {}

        def phase_start(self, phase_name: str, parent_phase: str | None, num_steps: int) -> None:
            try:
                with self._lock:
                    self._bars[phase_name] = tqdm(total=num_steps, desc=phase_name, position=len(self._bars),
                                                  leave=False, file=sys.stderr, disable=None)
            except BaseException as e:  # noqa: BLE001 - the binding would swallow it: keep it for after the build
                interrupt.fail(e)

        def step_complete(self, phase_name: str, step: int) -> bool:
            try:
                with self._lock:
                    bar = self._bars.get(phase_name)
                    if bar is not None:
                        bar.n = step + 1
                        bar.refresh()
            except BaseException as e:  # noqa: BLE001 - as above
                interrupt.fail(e)
            return not interrupt.cancelled

        def phase_finish(self, phase_name: str) -> None:
            try:
                with self._lock:
                    bar = self._bars.pop(phase_name, None)
                    if bar is not None:
                        bar.close()
            except BaseException as e:  # noqa: BLE001 - as above
                interrupt.fail(e)

    return Monitor()


@contextlib.contextmanager
def spinner(text: str) -> Iterator[None]:
    """Elapsed time on stderr while TensorRT < 10 builds (it has no progress monitor)."""
    done = threading.Event()
    start = time.monotonic()

    def spin() -> None:
        frames = "|/-\\"
        i = 0
        while not done.wait(0.25):
            sys.stderr.write(f"\r{text} {frames[i % 4]} {time.monotonic() - start:.0f} s")
            sys.stderr.flush()
            i += 1

    t = threading.Thread(target=spin, daemon=True)
    t.start()
    try:
        yield
    finally:
        done.set()
        t.join()
        sys.stderr.write(f"\r{text} done in {time.monotonic() - start:.0f} s\n")


# --------------------------------------------------------------------------------------------------------------------
# Implicit calibration (TensorRT ≤ 10)


def make_calibrator(trt: Any, class_name: str, batches: Iterator[np.ndarray], batch_shape: tuple[int, ...],
                    cache: CalibrationCache, interrupt: BuildInterrupt) -> Any:
    """An IInt8EntropyCalibrator2/IInt8MinMaxCalibrator feeding ``batches`` (N×3×H×W float32) through one device
    buffer (cuda-python). The cache is read back only under its key and never written for an interrupted or failed
    calibration."""
    _, cudart, _ = cuda_modules()
    base = getattr(trt, class_name)
    nbytes = int(np.prod(batch_shape)) * 4

    class Calibrator(base):  # type: ignore[misc, valid-type]
        def __init__(self) -> None:
            base.__init__(self)
            self._device = check(cudart.cudaMalloc(nbytes), "cudaMalloc")
            self.count = 0

        def get_batch_size(self) -> int:
            return int(batch_shape[0])

        def get_batch(self, names: list[str]) -> list[int] | None:
            if interrupt.cancelled:
                return None
            try:
                batch = next(batches, None)
                if batch is None:
                    return None
                host = np.ascontiguousarray(batch, dtype=np.float32)
                check(cudart.cudaMemcpy(self._device, host.ctypes.data, nbytes,
                                        cudart.cudaMemcpyKind.cudaMemcpyHostToDevice), "cudaMemcpy")
            except BaseException as e:  # noqa: BLE001 - the binding would swallow it: keep it for after the build
                interrupt.fail(e)
                return None
            self.count += 1
            return [int(self._device)]

        def read_calibration_cache(self) -> bytes | None:
            try:
                return cache.read()
            except BaseException as e:  # noqa: BLE001 - as above
                interrupt.fail(e)
                return None

        def write_calibration_cache(self, data: Any) -> None:
            if interrupt.cancelled:
                return
            try:
                cache.write(bytes(data))
            except BaseException as e:  # noqa: BLE001 - as above
                interrupt.fail(e)

        def free(self) -> None:
            if self._device:
                cudart.cudaFree(self._device)
                self._device = 0

    return Calibrator()


# --------------------------------------------------------------------------------------------------------------------
# Build steps


@dataclass(frozen=True)
class OnnxSummary:
    """What the build needs to know about the ONNX, read once without its external data."""

    meta: ModelMeta
    nodes: tuple[tuple[str, str], ...]  # (name, op_type) per node, to name parser errors on TensorRT 8.x
    precision: str  # what the graph carries: fp32 | fp16 | int8
    input_dtype: str  # numpy dtype names of the network input and output (float32, float16, ...)
    output_dtype: str


def read_onnx(model: Path) -> OnnxSummary:
    """Read ``model``'s metadata, nodes, carried precision and I/O element types."""
    import onnx

    proto = load_onnx(model, load_external_data=False)
    meta = read_meta(proto)
    precision = onnx_precision_hint(
        (n.op_type for n in proto.graph.node),
        ("float16" if t.data_type == onnx.TensorProto.FLOAT16 else "other" for t in proto.graph.initializer))
    try:
        input_dtype, _ = io_tensor(proto, meta.input_name)
        output_dtype, _ = io_tensor(proto, meta.output_name)
    except ValueError as e:
        raise ValueError(f"{model}: {e}") from None
    return OnnxSummary(meta, tuple((n.name, n.op_type) for n in proto.graph.node), precision, input_dtype,
                       output_dtype)


def create_builder(trt: Any, logger: Any) -> Any:
    try:
        return trt.Builder(logger)
    except (TypeError, RuntimeError) as e:  # no GPU/driver: "CUDA initialization failure", then a TypeError
        raise RuntimeError(f"TensorRT {trt.__version__} cannot create a builder (no usable CUDA GPU?): {e}") from None


def _parser_errors(parser: Any, features: TrtFeatures) -> list[ParserErrorInfo]:
    errors = []
    for i in range(parser.num_errors):
        e = parser.get_error(i)
        errors.append(ParserErrorInfo(
            code=str(getattr(e.code(), "name", e.code())), desc=str(e.desc()), node=int(e.node()),
            node_name=str(e.node_name()) if features.parser_error_node_names else None,
            op_type=str(e.node_operator()) if features.parser_error_node_names else None))
    return errors


def parse_network(trt: Any, builder: Any, logger: Any, model: Path, plan: BuildPlan, features: TrtFeatures,
                  onnx_nodes: tuple[tuple[str, str], ...]) -> tuple[Any, Any]:
    """Create the network with the plan's flags and parse the ONNX into it; returns (network, parser), the parser
    kept alive as long as the network (it owns the weights)."""
    network = builder.create_network(network_flags_value(trt.NetworkDefinitionCreationFlag.__members__,
                                                         plan.network_flags))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(model)):
        raise RuntimeError(format_parser_errors(_parser_errors(parser, features), onnx_nodes))
    return network, parser


def configure(trt: Any, builder: Any, plan: BuildPlan, options: BuildOptions) -> Any:
    """The builder config: the plan's flags, workspace, DLA and hardware compatibility."""
    config = builder.create_builder_config()
    for name in plan.builder_flags:
        config.set_flag(getattr(trt.BuilderFlag, name))
    if options.workspace_mib is not None:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(options.workspace_mib) << 20)
    if options.dla_core is not None:
        available = int(builder.num_DLA_cores)
        if options.dla_core >= available:
            raise RuntimeError(f"--dla-core {options.dla_core}: this device has {available} DLA core(s)")
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = int(options.dla_core)
    if plan.hardware_level is not None:
        config.hardware_compatibility_level = getattr(trt.HardwareCompatibilityLevel, plan.hardware_level)
    return config


def make_profile(builder: Any, input_name: str, profile: Profile) -> Any:
    p = builder.create_optimization_profile()
    p.set_shape(input_name, *profile)
    return p


def load_timing_cache(config: Any, path: Path | None) -> None:
    """Start from the timing cache at ``path`` when it exists (an empty one otherwise)."""
    cache = config.create_timing_cache(path.read_bytes() if path is not None and path.is_file() else b"")
    if cache is None:
        raise RuntimeError(f"TensorRT cannot read the timing cache {path}: delete it, the build writes a new one")
    config.set_timing_cache(cache, ignore_mismatch=False)


def attach_calibrator(trt: Any, builder: Any, config: Any, model: Path, output: Path, summary: OnnxSummary,
                      profile: Profile, plan: BuildPlan, features: TrtFeatures, options: BuildOptions,
                      interrupt: BuildInterrupt) -> Any:
    """Give the config an implicit calibrator over ``options.calib`` at the profile's opt shape, with its own
    min = opt = max calibration profile where the version has one, and a keyed cache; returns the calibrator."""
    assert options.calib is not None and plan.calibrator is not None
    source = open_calibration(options.calib, max_images=options.max_images)
    calib_profile = calibration_profile(profile)
    shape = calib_profile[1]
    key = implicit_cache_key(source, summary.meta, shape, sha256_file(model), plan.calibrator, str(trt.__version__))
    cache = CalibrationCache(options.calib_cache or output.with_name(output.name + ".calib.cache"), key)
    reason = cache.mismatch()
    if reason is not None:
        print(f"note: {reason}: calibrating again", file=sys.stderr)
    calibrator = make_calibrator(trt, plan.calibrator, fixed_shape_batches(source, summary.meta, shape), shape, cache,
                                 interrupt)
    config.int8_calibrator = calibrator
    if features.calibration_profile:
        config.set_calibration_profile(make_profile(builder, summary.meta.input_name, calib_profile))
    return calibrator


def build_serialized(trt: Any, builder: Any, network: Any, config: Any, features: TrtFeatures, output: Path,
                     interrupt: BuildInterrupt) -> bytes:
    """Run the build with a progress monitor (≥ 10) or a spinner; KeyboardInterrupt or a callback's error once it
    returns, RuntimeError when TensorRT built nothing."""
    if features.progress_monitor:
        config.progress_monitor = make_progress_monitor(trt, interrupt)
        progress: contextlib.AbstractContextManager[None] = contextlib.nullcontext()
    else:
        progress = spinner(f"building {output.name} with TensorRT {trt.__version__}")
    with progress:
        serialized = builder.build_serialized_network(network, config)
    interrupt.raise_pending()
    if serialized is None:
        raise RuntimeError("TensorRT could not build the engine (its messages above say why)")
    return bytes(serialized)


def write_outputs(output: Path, plan_bytes: bytes, config: Any, timing_cache: Path | None, info: EngineInfo,
                  meta: ModelMeta) -> None:
    """The plan, the timing cache and the sidecar, each atomically; the sidecar last, so a sidecar always describes
    the plan beside it."""
    make_dirs(output.parent, output)
    atomic_write_bytes(output, plan_bytes)
    if timing_cache is not None:
        atomic_write_bytes(timing_cache, bytes(config.get_timing_cache().serialize()))
    write_sidecar(output, replace(meta, precision=info.precision), info)


def build_engine(model: str | os.PathLike[str], output: str | os.PathLike[str],
                 options: BuildOptions = BuildOptions()) -> EngineInfo:
    """Build ``model`` into ``output`` and write its sidecar; returns the :class:`runtime.engine_info.EngineInfo`.

    Everything that can be checked without TensorRT (the ONNX, the precision, the profile) is checked first."""
    model, output = Path(model), Path(output)
    if not model.is_file():
        raise FileNotFoundError(f"model {model} does not exist")
    summary = read_onnx(model)
    calibrator = options.calibrator if options.calib is not None else None
    precision = resolve_precision(options.precision, summary.precision, calibrating=calibrator is not None)
    check_precision(precision, summary.precision, calibrator)
    profile = resolve_profile(options.min_shape, options.opt_shape, options.max_shape, summary.meta.output_stride,
                              max_batch=options.max_batch)

    trt = import_tensorrt()
    features = probe(trt)
    plan = plan_build(features, precision, summary.precision, calibrator=calibrator, dla_core=options.dla_core,
                      version_compatible=options.version_compatible,
                      hardware_compatibility=options.hardware_compatibility)
    for note in plan.notes:
        print(f"note: {note}", file=sys.stderr)

    logger = trt.Logger(trt.Logger.WARNING)
    builder = create_builder(trt, logger)
    network, _parser = parse_network(trt, builder, logger, model, plan, features, summary.nodes)
    config = configure(trt, builder, plan, options)
    config.add_optimization_profile(make_profile(builder, network.get_input(0).name, profile))
    load_timing_cache(config, options.timing_cache)
    calibrator_obj = None
    with BuildInterrupt() as interrupt:
        try:
            if plan.calibrator is not None:
                calibrator_obj = attach_calibrator(trt, builder, config, model, output, summary, profile, plan,
                                                   features, options, interrupt)
            plan_bytes = build_serialized(trt, builder, network, config, features, output, interrupt)
        finally:
            if calibrator_obj is not None:
                calibrator_obj.free()

    gpu = gpu_properties()
    info = EngineInfo(
        tensorrt_version=str(trt.__version__), gpu_name=gpu[0] if gpu else "unknown",
        compute_capability=gpu[1] if gpu else "unknown", precision=precision,
        profile={k: list(s) for k, s in zip(("min", "opt", "max"), profile)}, onnx_sha256=sha256_file(model),
        version_compatible=options.version_compatible, hardware_compatibility=options.hardware_compatibility,
        built_at=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        onnx_path=str(model), dla_core=options.dla_core, input_dtype=summary.input_dtype,
        output_dtype=summary.output_dtype)
    write_outputs(output, plan_bytes, config, options.timing_cache, info, summary.meta)
    return info
