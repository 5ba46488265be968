"""`python -m export engine`: ONNX -> TensorRT engine (plan) + sidecar metadata, on TensorRT 8.5 through 11.

Thin TensorRT code: every version-dependent decision (network flags, precision flags, calibrators, compatibility
levels, parser error details) comes from the pure functions in :mod:`export.trt_compat`. The plan is written
atomically next to ``<engine>.json`` (:mod:`runtime.engine_info`), which the runtime checks before deserializing.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any, Iterator

INSTALL_HINT = ("TensorRT is not installed: on a GPU server `pip install tensorrt` (CUDA 13) or "
                "`pip install tensorrt-cu12` (CUDA 12); on Jetson it comes with JetPack (apt install python3-libnvinfer)")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="ONNX model (or demo): FP32, FP16 (export fp16) or INT8 Q/DQ (export int8)")
    p.add_argument("-o", "--output", help="engine file (default: MODEL.plan)")
    p.add_argument("--precision", choices=("fp32", "fp16", "int8"), default=None,
                   help="default: what the ONNX carries (Q/DQ -> int8, fp16 weights -> fp16, else fp32)")
    p.add_argument("--min-shape", metavar="NxCxHxW", help="optimization profile minimum (default 1x3x256x256)")
    p.add_argument("--opt-shape", metavar="NxCxHxW", help="shape TensorRT tunes for (default 1x3x512x512)")
    p.add_argument("--max-shape", metavar="NxCxHxW", help="optimization profile maximum (default 1x3x1024x1024)")
    p.add_argument("--workspace", type=int, metavar="MiB", help="builder workspace limit (default: TensorRT's)")
    p.add_argument("--timing-cache", metavar="FILE", help="timing cache, read if present and written back")
    p.add_argument("--calib", metavar="DIR|FILE.py",
                   help="implicit INT8 calibration of an FP32 ONNX (TensorRT ≤ 10 only; prefer `export int8`)")
    p.add_argument("--calibrator", choices=("entropy", "minmax"), default="entropy",
                   help="implicit calibrator (entropy = IInt8EntropyCalibrator2, minmax = IInt8MinMaxCalibrator)")
    p.add_argument("--calib-cache", metavar="FILE", help="implicit calibration cache (default: ENGINE.calib.cache)")
    p.add_argument("--max-images", type=int, help="use at most N calibration images")
    p.add_argument("--dla-core", type=int, metavar="N", help="run on DLA core N, with GPU fallback")
    p.add_argument("--version-compatible", action="store_true",
                   help="engine runs on later TensorRT versions too (≥ 8.6; 10 -> 11, 8 -> 10)")
    p.add_argument("--hardware-compatibility", nargs="?", const="ampere_plus", default=None,
                   choices=("ampere_plus", "same_compute_capability"),
                   help="engine runs on other GPUs: ampere_plus (default when given) or same_compute_capability")


def run(args: argparse.Namespace) -> int:
    from export.trt_compat import parse_shape

    from export.onnx_graph import default_output
    from runtime.backends import resolve_model

    model = resolve_model(args.model)
    output = Path(args.output) if args.output else default_output(args.model, ".plan")
    shapes = [parse_shape(s) if s else None for s in (args.min_shape, args.opt_shape, args.max_shape)]
    info = build_engine(
        model, output, precision=args.precision, min_shape=shapes[0], opt_shape=shapes[1], max_shape=shapes[2],
        workspace_mib=args.workspace, timing_cache=args.timing_cache, calib=args.calib,
        calibrator=args.calibrator if args.calib else None, calib_cache=args.calib_cache, max_images=args.max_images,
        dla_core=args.dla_core, version_compatible=args.version_compatible,
        hardware_compatibility=args.hardware_compatibility)
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
# Progress


def make_progress_monitor(trt: Any) -> Any:
    """An ``IProgressMonitor`` (TensorRT ≥ 10) that shows one tqdm bar per optimizer phase."""
    from tqdm import tqdm

    class Monitor(trt.IProgressMonitor):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            trt.IProgressMonitor.__init__(self)
            self._lock = threading.Lock()
            self._bars: dict[str, Any] = {}
            self.cancelled = False

        def phase_start(self, phase_name: str, parent_phase: str | None, num_steps: int) -> None:
            with self._lock:
                self._bars[phase_name] = tqdm(total=num_steps, desc=phase_name, position=len(self._bars),
                                              leave=False, file=sys.stderr)

        def step_complete(self, phase_name: str, step: int) -> bool:
            with self._lock:
                bar = self._bars.get(phase_name)
                if bar is not None:
                    bar.n = step + 1
                    bar.refresh()
            return not self.cancelled

        def phase_finish(self, phase_name: str) -> None:
            with self._lock:
                bar = self._bars.pop(phase_name, None)
                if bar is not None:
                    bar.close()

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


def make_calibrator(trt: Any, class_name: str, batches: Iterator[Any], batch_shape: tuple[int, ...],
                    cache_path: Path) -> Any:
    """An IInt8EntropyCalibrator2/IInt8MinMaxCalibrator feeding ``batches`` (N×3×H×W float32) through one device
    buffer (cuda-python), with a calibration cache file."""
    import numpy as np

    from runtime.cuda_util import check, cuda_modules

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
            batch = next(batches, None)
            if batch is None:
                return None
            host = np.ascontiguousarray(batch, dtype=np.float32)
            check(cudart.cudaMemcpy(self._device, host.ctypes.data, nbytes,
                                    cudart.cudaMemcpyKind.cudaMemcpyHostToDevice), "cudaMemcpy")
            self.count += 1
            return [int(self._device)]

        def read_calibration_cache(self) -> bytes | None:
            return cache_path.read_bytes() if cache_path.is_file() else None

        def write_calibration_cache(self, cache: Any) -> None:
            from runtime.atomic import atomic_write_bytes

            atomic_write_bytes(cache_path, bytes(cache))

        def free(self) -> None:
            if self._device:
                cudart.cudaFree(self._device)
                self._device = 0

    return Calibrator()


# --------------------------------------------------------------------------------------------------------------------
# Build


def _parser_errors(parser: Any, features: Any) -> list[Any]:
    from export.trt_compat import ParserErrorInfo

    errors = []
    for i in range(parser.num_errors):
        e = parser.get_error(i)
        errors.append(ParserErrorInfo(
            code=str(getattr(e.code(), "name", e.code())), desc=str(e.desc()), node=int(e.node()),
            node_name=str(e.node_name()) if features.parser_error_node_names else None,
            op_type=str(e.node_operator()) if features.parser_error_node_names else None))
    return errors


def build_engine(model: str | os.PathLike[str], output: str | os.PathLike[str], *, precision: str | None = None,
                 min_shape: tuple[int, ...] | None = None, opt_shape: tuple[int, ...] | None = None,
                 max_shape: tuple[int, ...] | None = None, workspace_mib: int | None = None,
                 timing_cache: str | os.PathLike[str] | None = None, calib: str | os.PathLike[str] | None = None,
                 calibrator: str | None = None, calib_cache: str | os.PathLike[str] | None = None,
                 max_images: int | None = None, dla_core: int | None = None, version_compatible: bool = False,
                 hardware_compatibility: str | None = None) -> Any:
    """Build ``model`` into ``output`` and write its sidecar; returns the :class:`runtime.engine_info.EngineInfo`."""
    import onnx

    from runtime.atomic import atomic_write_bytes
    from export.onnx_export import sha256_file
    from export.onnx_graph import read_meta
    from export.trt_compat import (format_parser_errors, network_flags_value, onnx_precision_hint, plan_build,
                                   probe, resolve_profile)
    from runtime.engine_info import EngineInfo, gpu_properties, write_sidecar

    model, output = Path(model), Path(output)
    if not model.is_file():
        raise FileNotFoundError(f"model {model} does not exist")
    if calib is not None and calibrator is None:
        calibrator = "entropy"
    proto = onnx.load(str(model), load_external_data=False)
    meta = read_meta(proto)
    onnx_nodes = [(n.name, n.op_type) for n in proto.graph.node]
    onnx_precision = onnx_precision_hint(
        (n.op_type for n in proto.graph.node),
        ("float16" if t.data_type == onnx.TensorProto.FLOAT16 else "other" for t in proto.graph.initializer))
    del proto
    precision = precision or onnx_precision
    profile = resolve_profile(min_shape, opt_shape, max_shape, meta.output_stride)

    trt = import_tensorrt()
    features = probe(trt)
    plan = plan_build(features, precision, onnx_precision, calibrator=calibrator, dla_core=dla_core,
                      version_compatible=version_compatible, hardware_compatibility=hardware_compatibility)
    for note in plan.notes:
        print(f"note: {note}", file=sys.stderr)

    logger = trt.Logger(trt.Logger.WARNING)
    try:
        builder = trt.Builder(logger)
    except (TypeError, RuntimeError) as e:  # no GPU/driver: "CUDA initialization failure", then a TypeError
        raise RuntimeError(f"TensorRT {trt.__version__} cannot create a builder (no usable CUDA GPU?): {e}") from None
    flags = network_flags_value(trt.NetworkDefinitionCreationFlag.__members__, plan.network_flags)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(model)):
        raise RuntimeError(format_parser_errors(_parser_errors(parser, features), onnx_nodes))
    input_name = network.get_input(0).name

    config = builder.create_builder_config()
    for name in plan.builder_flags:
        config.set_flag(getattr(trt.BuilderFlag, name))
    if workspace_mib is not None:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_mib) << 20)
    opt_profile = builder.create_optimization_profile()
    opt_profile.set_shape(input_name, *profile)
    config.add_optimization_profile(opt_profile)
    if dla_core is not None:
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = int(dla_core)
    if plan.hardware_level is not None:
        config.hardware_compatibility_level = getattr(trt.HardwareCompatibilityLevel, plan.hardware_level)

    cache_file = Path(timing_cache) if timing_cache else None
    cache = config.create_timing_cache(cache_file.read_bytes() if cache_file and cache_file.is_file() else b"")
    config.set_timing_cache(cache, ignore_mismatch=False)

    calib_obj = None
    if plan.calibrator is not None:
        from export.calibration import fixed_shape_batches, open_calibration

        source = open_calibration(calib, max_images=max_images)
        calib_path = Path(calib_cache) if calib_cache else output.with_name(output.name + ".calib.cache")
        calib_obj = make_calibrator(trt, plan.calibrator, fixed_shape_batches(source, meta, profile[1]), profile[1],
                                    calib_path)
        config.int8_calibrator = calib_obj
        config.set_calibration_profile(opt_profile)

    monitor = None
    if features.progress_monitor:
        monitor = make_progress_monitor(trt)
        config.progress_monitor = monitor
        progress = contextlib.nullcontext()
    else:
        progress = spinner(f"building {output.name} with TensorRT {trt.__version__}")
    try:
        with progress:
            serialized = builder.build_serialized_network(network, config)
    except KeyboardInterrupt:
        if monitor is not None:
            monitor.cancelled = True
        raise
    finally:
        if calib_obj is not None:
            calib_obj.free()
    if serialized is None:
        raise RuntimeError("TensorRT could not build the engine (its messages above say why)")

    output.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(output, bytes(serialized))
    if cache_file is not None:
        atomic_write_bytes(cache_file, bytes(config.get_timing_cache().serialize()))
    gpu = gpu_properties()
    info = EngineInfo(
        tensorrt_version=str(trt.__version__), gpu_name=gpu[0] if gpu else "unknown",
        compute_capability=gpu[1] if gpu else "unknown", precision=precision,
        profile={k: list(s) for k, s in zip(("min", "opt", "max"), profile)}, onnx_sha256=sha256_file(model),
        version_compatible=version_compatible, hardware_compatibility=hardware_compatibility,
        built_at=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        onnx_path=str(model), dla_core=dla_core)
    from dataclasses import replace

    write_sidecar(output, replace(meta, precision=precision), info)
    return info
