"""A ``tensorrt`` module per release, behaving on ONNX Runtime, exposing exactly that release's surface.

The behaviour (builder, parser, config, profiles, plans, runtime, engine, execution context, calibrators, progress
monitor) is written once below; :func:`make_module` then builds, for one release, a module holding only the classes,
members, enum values and functions that release's binding sources declare (:mod:`trt_standin.surface`). A name the
release lacks raises AttributeError, as the real module would; a name it has but the stand-in does not implement
raises AttributeError saying so.

A "plan" is the ONNX plus a JSON header (release, precision flags, profile, I/O); it deserializes only under the
release that built it (or, when built version-compatible, under the releases TensorRT documents as able to run it).
Execution reads inputs from and writes outputs to the stand-in device memory (:mod:`trt_standin.cuda`), bounds-checked,
on the stream's queue. Exceptions raised in Python callbacks are printed and swallowed as TensorRT's bindings do; a
Ctrl-C that arrives while the "C++" build runs is delivered when Python code next runs (in a callback, or on return).
"""
from __future__ import annotations

import enum
import functools
import importlib.machinery
import json
import os
import re
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

import numpy as np
from shared_data import TENSORRT_API

from trt_standin import cuda
from trt_standin.surface import Surface, read_surface

MAGIC = b"TRT-STANDIN-PLAN\0"
MAX_OPSET = {8: 17, 10: 20, 11: 25}


def _major(version: str) -> int:
    return int(version.split(".")[0])


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", version))


class _Filtered(type):
    """Metaclass: class-level access to a member this release lacks raises AttributeError (unless a user subclass
    defines that name itself)."""

    def __getattribute__(cls, name: str) -> Any:
        if not name.startswith("_"):
            denied = type.__getattribute__(cls, "_trt_denied")
            if name in denied and name not in type.__getattribute__(cls, "_trt_user_names"):
                raise AttributeError(f"type object '{type.__getattribute__(cls, '__name__')}' has no attribute "
                                     f"'{name}' (not in TensorRT {type.__getattribute__(cls, '_trt_version')})")
        return type.__getattribute__(cls, name)


class _Base(metaclass=_Filtered):
    """Instance-level filtering: stand-in objects expose only the release's members. A user's Python subclass (a
    logger, calibrator, progress monitor) may define and set any name of its own, as on a pybind11 class."""

    _trt_denied: frozenset[str] = frozenset()
    _trt_allowed: frozenset[str] = frozenset()
    _trt_user_names: frozenset[str] = frozenset()
    _trt_version = ""
    _trt_module: Any = None
    _trt_standin_own = True  # False for user subclasses

    def __getattribute__(self, name: str) -> Any:
        if not name.startswith("_") and name in type(self)._trt_denied:
            cls = type(self)
            mine = name in cls._trt_user_names or name in object.__getattribute__(self, "__dict__")
            if cls._trt_standin_own or not mine:
                raise AttributeError(f"'{cls.__name__}' object has no attribute '{name}' "
                                     f"(not in TensorRT {cls._trt_version})")
        return object.__getattribute__(self, name)

    def __setattr__(self, name: str, value: Any) -> None:
        cls = type(self)
        if not name.startswith("_") and cls._trt_standin_own and name not in cls._trt_allowed:
            raise AttributeError(f"'{cls.__name__}' object has no attribute '{name}' "
                                 f"(not settable in TensorRT {cls._trt_version})")
        object.__setattr__(self, name, value)

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        if "_trt_version" not in cls.__dict__:
            cls._trt_standin_own = False
            cls._trt_user_names = frozenset(n for k in cls.__mro__ if "_trt_version" not in k.__dict__
                                            and k.__module__ != __name__ for n in vars(k))


def _callback(obj: Any, method: str, *args: Any, default: Any = None) -> Any:
    """Call a Python override as TensorRT's trampolines do: any exception is printed and swallowed. A Ctrl-C that
    arrived during the "C++" work is delivered here, inside the callback."""
    state = _build_state()
    try:
        if state.get("pending_interrupt"):
            state["pending_interrupt"] = False
            raise KeyboardInterrupt
        return getattr(obj, method)(*args)
    except BaseException as e:  # noqa: BLE001 - what the binding does
        print(f"[ERROR] Exception caught in {method}(): {type(e).__name__}: {e}", file=sys.stderr)
        return default


_BUILD = {"pending_interrupt": False}


def _build_state() -> dict:
    return _BUILD


def _native(fn: Callable[[], Any]) -> Any:
    """Run ``fn`` as if it were C++ code: a KeyboardInterrupt raised meanwhile is held until Python runs again."""
    try:
        return fn()
    except KeyboardInterrupt:
        _BUILD["pending_interrupt"] = True
        return None


# ---------------------------------------------------------------------------------------------------------------------
# Behaviour (one implementation for every release)


class ILogger(_Base):
    def __init__(self) -> None:
        pass

    def log(self, severity: Any, msg: str) -> None:
        raise NotImplementedError


class Logger(ILogger):
    def __init__(self, min_severity: Any = None) -> None:
        sev = type(self)._trt_module.ILogger.Severity
        self.min_severity = sev.WARNING if min_severity is None else min_severity

    def log(self, severity: Any, msg: str) -> None:
        if int(severity) <= int(self.min_severity):
            print(f"[TRT] [{severity.name[0]}] {msg}", file=sys.stderr)


def _raw(obj: Any, name: str, default: Any = None) -> Any:
    """An attribute as the stand-in stores it, whether or not this release exposes it to Python."""
    try:
        return object.__getattribute__(obj, name)
    except AttributeError:
        return default


def _log(logger: Any, level: str, msg: str) -> None:
    sev = getattr(type(logger)._trt_module.ILogger.Severity, level)
    if isinstance(logger, Logger) and type(logger)._trt_standin_own:
        logger.log(sev, msg)
    else:
        _callback(logger, "log", sev, msg)


class ITensor(_Base):
    def __init__(self, name: str, shape: tuple[int, ...], dtype: Any, is_input: bool) -> None:
        object.__setattr__(self, "_name", name)
        object.__setattr__(self, "_shape", tuple(shape))
        object.__setattr__(self, "_dtype", dtype)
        object.__setattr__(self, "_is_input", is_input)

    name = property(lambda self: self._name)
    shape = property(lambda self: self._module_dims(self._shape))
    dtype = property(lambda self: self._dtype)
    is_network_input = property(lambda self: self._is_input)
    is_network_output = property(lambda self: not self._is_input)

    def _module_dims(self, shape: tuple[int, ...]) -> Any:
        return type(self)._trt_module.Dims(shape)


class Dims(tuple):
    """TensorRT's Dims: a sequence of ints (-1 for a dynamic dimension)."""

    def __new__(cls, shape: Any = ()) -> "Dims":
        return super().__new__(cls, (int(d) for d in shape))


class INetworkDefinition(_Base):
    def __init__(self, builder: "Builder", flags: int) -> None:
        object.__setattr__(self, "_builder", builder)
        object.__setattr__(self, "_flags", int(flags))
        object.__setattr__(self, "_onnx", None)
        object.__setattr__(self, "_inputs", [])
        object.__setattr__(self, "_outputs", [])
        object.__setattr__(self, "_precision_ops", set())

    def _flag(self, name: str) -> bool:
        members = type(self)._trt_module.NetworkDefinitionCreationFlag.__members__
        return name in members and bool(self._flags & (1 << int(members[name])))

    num_inputs = property(lambda self: len(self._inputs))
    num_outputs = property(lambda self: len(self._outputs))
    has_implicit_batch_dimension = property(lambda self: self._implicit_batch())
    flags = property(lambda self: self._flags)
    is_strongly_typed = property(lambda self: self._strongly_typed())

    def _implicit_batch(self) -> bool:
        return _major(type(self)._trt_version) < 10 and not self._flag("EXPLICIT_BATCH")

    def _strongly_typed(self) -> bool:
        return _major(type(self)._trt_version) >= 11 or self._flag("STRONGLY_TYPED")

    def get_input(self, index: int) -> ITensor:
        return self._inputs[index]

    def get_output(self, index: int) -> ITensor:
        return self._outputs[index]

    def get_flag(self, flag: Any) -> bool:
        return bool(self._flags & (1 << int(flag)))


_ONNX_TO_TRT = {1: "FLOAT", 10: "HALF", 16: "BF16", 3: "INT8", 6: "INT32", 7: "INT64", 9: "BOOL", 2: "UINT8",
                17: "FP8", 18: "FP8"}


class ParserError(_Base):
    def __init__(self, code: Any, desc: str, node: int, node_name: str, op: str) -> None:
        for k, v in (("_code", code), ("_desc", desc), ("_node", node), ("_node_name", node_name), ("_op", op)):
            object.__setattr__(self, k, v)

    def code(self) -> Any:
        return self._code

    def desc(self) -> str:
        return self._desc

    def node(self) -> int:
        return self._node

    def node_name(self) -> str:
        return self._node_name

    def node_operator(self) -> str:
        return self._op

    def file(self) -> str:
        return "ModelImporter.cpp"

    def line(self) -> int:
        return 0

    def func(self) -> str:
        return "parseGraph"

    def __str__(self) -> str:
        return f"In node {self._node} ({self._node_name}): {self._code.name}: {self._desc}"


class OnnxParser(_Base):
    def __init__(self, network: INetworkDefinition, logger: Any) -> None:
        object.__setattr__(self, "_network", network)
        object.__setattr__(self, "_logger", logger)
        object.__setattr__(self, "_errors", [])

    num_errors = property(lambda self: len(self._errors))

    def get_error(self, index: int) -> ParserError:
        return self._errors[index]

    def clear_errors(self) -> None:
        self._errors.clear()

    def parse_from_file(self, model: str) -> bool:
        return self.parse(Path(model).read_bytes(), str(model))

    def parse(self, model: bytes, path: str | None = None) -> bool:
        import onnx

        mod = type(self)._trt_module
        code = mod.ErrorCode
        version = type(self)._trt_version
        net = self._network

        def fail(desc: str, node: int = -1, name: str = "", op: str = "", kind: str = "INVALID_GRAPH") -> bool:
            self._errors.append(mod.ParserError(getattr(code, kind), desc, node, name, op))
            _log(self._logger, "ERROR", desc)
            return False

        if net._implicit_batch():
            return fail("This version of the ONNX parser only supports TensorRT INetworkDefinitions with an explicit "
                        "batch dimension. Please ensure the network was initialized with the kEXPLICIT_BATCH flag.")
        try:
            proto = onnx.load_from_string(bytes(model))
        except Exception as e:  # noqa: BLE001 - protobuf errors
            return fail(f"Failed to parse ONNX model: {e}", kind="MODEL_DESERIALIZE_FAILED")
        opset = max((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), default=0)
        if opset > MAX_OPSET[_major(version)]:
            return fail(f"Unsupported ONNX opset {opset} (TensorRT {version} parses up to "
                        f"{MAX_OPSET[_major(version)]})", kind="UNSUPPORTED_GRAPH")
        for i, node in enumerate(proto.graph.node):
            if node.domain not in ("", "ai.onnx") or not onnx.defs.has(node.op_type):
                return fail(f"No importer registered for op: {node.op_type}", i, node.name, node.op_type,
                            "UNSUPPORTED_NODE")
        init_names = {t.name for t in proto.graph.initializer}
        dt = mod.DataType
        try:
            for vi, is_input in [(v, True) for v in proto.graph.input if v.name not in init_names] + \
                                [(v, False) for v in proto.graph.output]:
                tt = vi.type.tensor_type
                dtype_name = _ONNX_TO_TRT.get(tt.elem_type)
                if dtype_name is None or dtype_name not in dt.__members__:
                    return fail(f"unsupported data type {tt.elem_type} for tensor {vi.name}")
                shape = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in tt.shape.dim)
                (net._inputs if is_input else net._outputs).append(
                    mod.ITensor(vi.name, shape, dt.__members__[dtype_name], is_input))
        except AttributeError as e:
            return fail(str(e))
        object.__setattr__(net, "_onnx", bytes(model))
        object.__setattr__(net, "_precision_ops", {n.op_type for n in proto.graph.node})
        return True


class IOptimizationProfile(_Base):
    def __init__(self) -> None:
        object.__setattr__(self, "_shapes", {})

    def set_shape(self, input: str, min: Any, opt: Any, max: Any) -> None:
        object.__setattr__(self, "_shapes", {**self._shapes, input: tuple(tuple(int(d) for d in s)
                                                                         for s in (min, opt, max))})

    def get_shape(self, input: str) -> list:
        return [Dims(s) for s in self._shapes.get(input, ())]

    def __bool__(self) -> bool:
        return all(len(a) == len(b) == len(c) and all(x <= y <= z for x, y, z in zip(a, b, c))
                   for a, b, c in self._shapes.values())


class ITimingCache(_Base):
    def __init__(self, data: bytes) -> None:
        object.__setattr__(self, "_data", bytes(data) or b"TRT-STANDIN-TIMING-CACHE\0")

    def serialize(self) -> bytes:
        return self._data

    def combine(self, other: "ITimingCache", ignore_mismatch: bool) -> bool:
        return True

    def reset(self) -> bool:
        return True


class IBuilderConfig(_Base):
    def __init__(self) -> None:
        d = {"_flags": set(), "_profiles": [], "_pools": {}, "_timing_cache": None, "_calib_profile": None,
             "int8_calibrator": None, "progress_monitor": None, "default_device_type": None, "DLA_core": -1,
             "hardware_compatibility_level": None, "builder_optimization_level": 3, "profiling_verbosity": None,
             "avg_timing_iterations": 1, "engine_capability": None}
        for k, v in d.items():
            object.__setattr__(self, k, v)

    def set_flag(self, flag: Any) -> None:
        self._flags.add(flag.name)

    def clear_flag(self, flag: Any) -> None:
        self._flags.discard(flag.name)

    def get_flag(self, flag: Any) -> bool:
        return flag.name in self._flags

    def set_memory_pool_limit(self, pool: Any, pool_size: int) -> None:
        self._pools[pool.name] = int(pool_size)

    def get_memory_pool_limit(self, pool: Any) -> int:
        return self._pools.get(pool.name, 1 << 40)

    def add_optimization_profile(self, profile: IOptimizationProfile) -> int:
        if not profile:
            return -1
        self._profiles.append(profile)
        return len(self._profiles) - 1

    num_optimization_profiles = property(lambda self: len(self._profiles))

    def set_calibration_profile(self, profile: IOptimizationProfile) -> bool:
        object.__setattr__(self, "_calib_profile", profile)
        return True

    def get_calibration_profile(self) -> IOptimizationProfile | None:
        return self._calib_profile

    def create_timing_cache(self, serialized_timing_cache: bytes) -> ITimingCache:
        data = bytes(serialized_timing_cache)
        if data and not data.startswith(b"TRT-STANDIN-TIMING-CACHE"):
            return None  # type: ignore[return-value]
        return type(self)._trt_module.ITimingCache(data)

    def set_timing_cache(self, cache: ITimingCache, ignore_mismatch: bool) -> bool:
        object.__setattr__(self, "_timing_cache", cache)
        return True

    def get_timing_cache(self) -> ITimingCache | None:
        return self._timing_cache


def _build_seconds() -> float:
    return float(os.environ.get("TRT_STANDIN_BUILD_SECONDS", "0") or 0)


class Builder(_Base):
    def __init__(self, logger: Any) -> None:
        object.__setattr__(self, "_logger", logger)
        if not cuda.STATE.devices:
            _log(logger, "ERROR", "CUDA initialization failure with error: 35")
            raise TypeError("pybind11::init(): factory function returned nullptr")

    platform_has_fast_fp16 = property(lambda self: True)
    platform_has_fast_int8 = property(lambda self: True)
    num_DLA_cores = property(lambda self: 0)
    max_DLA_batch_size = property(lambda self: 1)
    logger = property(lambda self: self._logger)

    def create_network(self, flags: int = 0) -> INetworkDefinition:
        return type(self)._trt_module.INetworkDefinition(self, flags)

    def create_builder_config(self) -> IBuilderConfig:
        return type(self)._trt_module.IBuilderConfig()

    def create_optimization_profile(self) -> IOptimizationProfile:
        return type(self)._trt_module.IOptimizationProfile()

    def build_serialized_network(self, network: INetworkDefinition, config: IBuilderConfig) -> Any:
        plan = _native(lambda: self._build(network, config))
        if _BUILD.pop("pending_interrupt", False):
            _BUILD["pending_interrupt"] = False
            raise KeyboardInterrupt
        _BUILD["pending_interrupt"] = False
        return plan

    def _error(self, msg: str) -> None:
        _log(self._logger, "ERROR", msg)
        return None

    def _build(self, net: INetworkDefinition, config: IBuilderConfig) -> Any:
        version = type(self)._trt_version
        major = _major(version)
        if net._onnx is None:
            return self._error("Network has no layers (nothing was parsed)")
        flags = set(config._flags)
        qdq = bool({"QuantizeLinear", "DequantizeLinear"} & net._precision_ops)
        if net._strongly_typed() and major < 11 and flags & {"FP16", "INT8", "BF16", "FP8"}:
            return self._error("IBuilderConfig::validate: Error Code 3: API Usage Error (precision flags "
                               f"{sorted(flags & {'FP16', 'INT8', 'BF16', 'FP8'})} are not allowed on a strongly "
                               "typed network)")
        if qdq and major < 10 and "INT8" not in flags:
            return self._error("Network contains Q/DQ layers (explicit quantization) but the INT8 builder flag is not "
                               "set")
        calibrator = _raw(config, "int8_calibrator")
        if "INT8" in flags and not qdq and calibrator is None:
            return self._error("Calibration failure occurred with no scaling factors detected. This could be due to "
                               "no int8 calibrator or insufficient custom scales for network layers.")
        if not config._profiles:
            if any(-1 in t._shape for t in net._inputs):
                return self._error("Network has dynamic or shape inputs, but no optimization profile has been defined.")
        profile: dict[str, list[list[int]]] = {}
        for t in net._inputs:
            shapes = config._profiles[0]._shapes.get(t.name) if config._profiles else (t._shape,) * 3
            if shapes is None:
                return self._error(f"Optimization profile is missing values for input tensor {t.name}")
            for s in shapes:
                if len(s) != len(t._shape) or any(d != -1 and d != v for d, v in zip(t._shape, s)):
                    return self._error(f"{t.name}: profile dimensions {s} do not match the network input {t._shape}")
            profile[t.name] = [list(s) for s in shapes]
        level = _raw(config, "hardware_compatibility_level")
        device_type = _raw(config, "default_device_type")
        if device_type is not None and device_type.name == "DLA":
            return self._error("DLA is not available on this device (the stand-in GPU has no DLA cores)")
        monitor = _raw(config, "progress_monitor")
        if calibrator is not None and "INT8" in flags and not qdq:
            if not self._calibrate(calibrator, config, net, profile):
                return self._error("Calibration failure occurred with no scaling factors detected.")
        steps = max(1, int(_build_seconds() / 0.05))
        started = os.environ.get("TRT_STANDIN_BUILD_STARTED")
        if started:
            Path(started).write_text("building\n")
        if monitor is not None:
            _callback(monitor, "phase_start", "Building engine", None, steps)
        for step in range(steps):
            _native(lambda: time.sleep(_build_seconds() / steps))
            if monitor is not None and not _callback(monitor, "step_complete", "Building engine", step, default=False):
                _callback(monitor, "phase_finish", "Building engine")
                return self._error("Build was cancelled.")
        if monitor is not None:
            _callback(monitor, "phase_finish", "Building engine")
        header = {"version": version, "flags": sorted(flags), "profile": profile,
                  "strongly_typed": net._strongly_typed(), "version_compatible": "VERSION_COMPATIBLE" in flags,
                  "hardware_compatibility": getattr(level, "name", None),
                  "io": [[t.name, t._dtype.name, t._is_input] for t in net._inputs + net._outputs],
                  "declared": {t.name: list(t._shape) for t in net._inputs + net._outputs}}
        blob = json.dumps(header).encode()
        return IHostMemory(MAGIC + len(blob).to_bytes(8, "little") + blob + net._onnx)

    def _calibrate(self, calibrator: Any, config: IBuilderConfig, net: INetworkDefinition,
                   profile: dict[str, list[list[int]]]) -> bool:
        cache = _callback(calibrator, "read_calibration_cache")
        if cache:
            return True
        shapes = config._calib_profile._shapes if config._calib_profile is not None else None
        names = [t.name for t in net._inputs]
        batch = _callback(calibrator, "get_batch_size", default=0)
        count = 0
        while True:
            ptrs = _callback(calibrator, "get_batch", names)
            if not ptrs:
                break
            for name, ptr in zip(names, ptrs):
                shape = (shapes or {}).get(name, [profile[name][1]] * 3)[1]
                if batch and shape[0] != batch:
                    return False
                try:
                    cuda.STATE.read(int(ptr), tuple(shape), np.float32, f"calibration batch {name}")
                except cuda.StandinFault as e:
                    self._error(f"calibration: {e}")
                    return False
            count += 1
        if count == 0:
            return False
        _callback(calibrator, "write_calibration_cache", b"TRT-STANDIN-CALIBRATION\0")
        return True


class IHostMemory(bytes):
    """The serialized plan (``bytes(plan)`` and the buffer protocol work, as on the real object)."""

    nbytes = property(lambda self: len(self))


def _read_plan(data: bytes) -> tuple[dict, bytes] | None:
    if not data.startswith(MAGIC):
        return None
    n = int.from_bytes(data[len(MAGIC):len(MAGIC) + 8], "little")
    start = len(MAGIC) + 8
    try:
        header = json.loads(data[start:start + n])
    except (ValueError, UnicodeDecodeError):
        return None
    return header, data[start + n:]


def _can_run(built: str, running: str, version_compatible: bool) -> bool:
    b, r = _version_tuple(built), _version_tuple(running)
    if b == r:
        return True
    if not version_compatible or b[:2] < (8, 6) or r < b:
        return False
    return b[0] == r[0] or (b[0], r[0]) in ((8, 10), (10, 11))


class Runtime(_Base):
    def __init__(self, logger: Any) -> None:
        object.__setattr__(self, "_logger", logger)
        object.__setattr__(self, "engine_host_code_allowed", False)

    def deserialize_cuda_engine(self, serialized_engine: Any) -> "ICudaEngine | None":
        data = bytes(serialized_engine)
        parsed = _read_plan(data)
        version = type(self)._trt_version
        if parsed is None:
            _log(self._logger, "ERROR", "1: [runtime.cpp::parsePlan::314] Error Code 1: Serialization "
                                        "(Serialization assertion plan->header.magicTag == rt::kPLAN_MAGIC_TAG failed.)")
            return None
        header, onnx_bytes = parsed
        if not _can_run(header["version"], version, header["version_compatible"]):
            _log(self._logger, "ERROR", "1: [stdArchiveReader.cpp::StdArchiveReader::42] Error Code 1: Serialization "
                 "(Serialization assertion stdVersionRead == serializationVersion failed.Version tag does not match. "
                 f"Note: Current Version: {version}, Serialized Engine Version: {header['version']})")
            return None
        if header["version_compatible"] and header["version"] != version and not _raw(self, "engine_host_code_allowed"):
            _log(self._logger, "ERROR", "Cannot deserialize a version-compatible engine with a lean runtime unless "
                                        "engine_host_code_allowed is set")
            return None
        mod = type(self)._trt_module
        for _, dtype, _ in header["io"]:
            if dtype not in mod.DataType.__members__:
                _log(self._logger, "ERROR", f"unknown data type {dtype} in plan")
                return None
        return mod.ICudaEngine(header, onnx_bytes, cuda.STATE.current)


class ICudaEngine(_Base):
    def __init__(self, header: dict, onnx_bytes: bytes, device: int) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.log_severity_level = 3
        object.__setattr__(self, "_header", header)
        object.__setattr__(self, "_onnx", onnx_bytes)
        object.__setattr__(self, "_device", device)
        object.__setattr__(self, "_session", ort.InferenceSession(onnx_bytes, opts, providers=["CPUExecutionProvider"]))
        object.__setattr__(self, "_io", [(n, d, i) for n, d, i in header["io"]])
        object.__setattr__(self, "_out_shapes", {})

    num_io_tensors = property(lambda self: len(self._io))
    num_optimization_profiles = property(lambda self: 1)
    device_memory_size = property(lambda self: 1 << 20)
    device_memory_size_v2 = property(lambda self: 1 << 20)
    name = property(lambda self: "standin-engine")

    def _entry(self, name: str) -> tuple[str, str, bool] | None:
        return next((e for e in self._io if e[0] == name), None)

    def get_tensor_name(self, index: int) -> str:
        return self._io[index][0]

    def get_tensor_mode(self, name: str) -> Any:
        m = type(self)._trt_module.TensorIOMode
        e = self._entry(name)
        return m.NONE if e is None else (m.INPUT if e[2] else m.OUTPUT)

    def get_tensor_dtype(self, name: str) -> Any:
        e = self._entry(name)
        return type(self)._trt_module.DataType.__members__[e[1]] if e else None

    def get_tensor_shape(self, name: str) -> Dims:
        """The shape the network declares (-1 for each dynamic dimension, whatever the profile)."""
        return Dims(self._header["declared"].get(name, ()))

    def get_tensor_profile_shape(self, name: str, profile_index: int) -> list:
        return [Dims(s) for s in self._header["profile"][name]]

    def create_execution_context(self, strategy: Any = None) -> "IExecutionContext":
        return type(self)._trt_module.IExecutionContext(self)

    def serialize(self) -> IHostMemory:
        blob = json.dumps(self._header).encode()
        return IHostMemory(MAGIC + len(blob).to_bytes(8, "little") + blob + self._onnx)

    def _output_shapes(self, inputs: dict[str, tuple[int, ...]]) -> dict[str, tuple[int, ...]]:
        """What the network computes for these input shapes (ONNX Runtime on zeros, cached per shape)."""
        key = tuple(sorted(inputs.items()))
        if key not in self._out_shapes:
            feeds = {n: np.zeros(s, _NP[self._entry(n)[1]]) for n, s in inputs.items()}
            outs = self._session.run(None, feeds)
            self._out_shapes[key] = {o.name: tuple(a.shape) for o, a in zip(self._session.get_outputs(), outs)}
        return self._out_shapes[key]


_NP = {"FLOAT": np.float32, "HALF": np.float16, "INT8": np.int8, "INT32": np.int32, "INT64": np.int64,
       "BOOL": np.bool_, "UINT8": np.uint8}


class IExecutionContext(_Base):
    def __init__(self, engine: ICudaEngine) -> None:
        object.__setattr__(self, "_engine", engine)
        object.__setattr__(self, "_shapes", {})
        object.__setattr__(self, "_addresses", {})
        object.__setattr__(self, "_logger_msgs", [])

    engine = property(lambda self: self._engine)

    def _error(self, msg: str) -> bool:
        print(f"[TRT] [E] {msg}", file=sys.stderr)
        return False

    def set_input_shape(self, name: str, shape: Any) -> bool:
        e = self._engine._entry(name)
        if e is None or not e[2]:
            return self._error(f"IExecutionContext::setInputShape: Error Code 3: API Usage Error (Given tensor name: "
                               f"{name} is not an input tensor)")
        shape = tuple(int(d) for d in shape)
        lo, _, hi = self._engine._header["profile"][name]
        if len(shape) != len(lo) or any(not a <= s <= b for a, s, b in zip(lo, shape, hi)):
            return self._error(f"IExecutionContext::setInputShape: Error Code 3: API Usage Error (Given shape {shape} "
                               f"for {name} is outside the profile {lo}..{hi})")
        self._shapes[name] = shape
        return True

    def _inputs_set(self) -> bool:
        return all(n in self._shapes for n, _, is_in in self._engine._io if is_in)

    def get_tensor_shape(self, name: str) -> Dims:
        e = self._engine._entry(name)
        if e is None:
            return Dims(())
        if e[2]:
            return Dims(self._shapes[name]) if name in self._shapes else self._engine.get_tensor_shape(name)
        if not self._inputs_set():
            return self._engine.get_tensor_shape(name)
        return Dims(self._engine._output_shapes(dict(self._shapes))[name])

    @property
    def all_binding_shapes_specified(self) -> bool:
        return self._inputs_set()

    def set_tensor_address(self, name: str, memory: int) -> bool:
        if self._engine._entry(name) is None:
            return self._error(f"setTensorAddress: {name} is not a tensor of this engine")
        self._addresses[name] = int(memory)
        return True

    def get_tensor_address(self, name: str) -> int:
        return self._addresses.get(name, 0)

    def execute_async_v3(self, stream_handle: int) -> bool:
        eng = self._engine
        if cuda.STATE.current != eng._device:
            return self._error(f"IExecutionContext::enqueueV3: Error Code 1: Cuda Runtime (invalid resource handle: "
                               f"the engine is on device {eng._device}, the current device is {cuda.STATE.current})")
        if not self._inputs_set():
            return self._error("IExecutionContext::enqueueV3: Error Code 3: API Usage Error (not all input shapes "
                               "are specified)")
        missing = [n for n, _, _ in eng._io if not self._addresses.get(n)]
        if missing:
            return self._error(f"IExecutionContext::enqueueV3: Error Code 3: API Usage Error (no address for "
                               f"{', '.join(missing)})")
        try:
            stream = cuda.STATE.stream(stream_handle)
        except cuda.StandinFault as e:
            return self._error(str(e))
        if stream is not None and stream.device != eng._device:
            return self._error("IExecutionContext::enqueueV3: Error Code 1: Cuda Runtime (invalid resource handle)")
        fault = _FAULTS.get("execute_async_v3")
        if fault and (fault != "capturing" or (stream is not None and stream.capture is not None)):
            return self._error("IExecutionContext::enqueueV3: Error Code 1: (injected failure)")
        shapes = dict(self._shapes)
        addresses = dict(self._addresses)
        outs = eng._output_shapes(shapes)

        def work() -> None:
            for addr in addresses.values():
                a = cuda.STATE.find(addr)
                if a is not None and a.device is not None and a.device != eng._device:
                    raise cuda.StandinFault(cuda.cudaError_t.cudaErrorIllegalAddress,
                                            f"engine on device {eng._device} given memory of device {a.device}")
            feeds = {n: cuda.STATE.read(addresses[n], shapes[n], _NP[d], f"input {n}") for n, d, i in eng._io if i}
            results = eng._session.run(None, feeds)
            for o, arr in zip(eng._session.get_outputs(), results):
                d = eng._entry(o.name)[1]
                assert tuple(arr.shape) == outs[o.name]
                cuda.STATE.write(addresses[o.name], arr.astype(_NP[d], copy=False), f"output {o.name}")

        err = cuda.STATE.enqueue(stream, work)
        if err:
            return self._error(f"IExecutionContext::enqueueV3: Error Code 1: Cuda Runtime ({err.name})")
        return True


_FAULTS: dict[str, str] = {}


def inject_fault(call: str, when: str | None) -> None:
    """Make ``call`` fail: ``when="capturing"`` only while its stream captures a graph, ``"always"``, or None to
    clear. Used by tests of the error paths a healthy stand-in never takes."""
    if when is None:
        _FAULTS.pop(call, None)
    else:
        _FAULTS[call] = when


class IInt8Calibrator(_Base):
    def __init__(self) -> None:
        pass


class IInt8EntropyCalibrator2(IInt8Calibrator):
    pass


class IInt8MinMaxCalibrator(IInt8Calibrator):
    pass


class IInt8EntropyCalibrator(IInt8Calibrator):
    pass


class IInt8LegacyCalibrator(IInt8Calibrator):
    pass


class IProgressMonitor(_Base):
    def __init__(self) -> None:
        pass


def nptype(trt_type: Any) -> type:
    """The numpy type of a TensorRT DataType (the Python half of the real package); BF16/FP8/INT4 have none."""
    name = getattr(trt_type, "name", None)
    if name not in _NP:
        raise TypeError("Could not resolve TensorRT datatype to an equivalent numpy datatype.")
    return _NP[name]


def volume(iterable: Any) -> int:
    return int(np.prod(list(iterable))) if len(list(iterable)) else 1


_IMPLEMENTED = {c.__name__: c for c in (
    ILogger, Logger, ITensor, INetworkDefinition, ParserError, OnnxParser, IOptimizationProfile, ITimingCache,
    IBuilderConfig, Builder, Runtime, ICudaEngine, IExecutionContext, IInt8Calibrator, IInt8EntropyCalibrator2,
    IInt8MinMaxCalibrator, IInt8EntropyCalibrator, IInt8LegacyCalibrator, IProgressMonitor)}
_FUNCTIONS = {"get_nv_onnx_parser_version": lambda: 1, "init_libnvinfer_plugins": lambda logger, namespace: True}


def _enum(name: str, values: list[tuple[str, str]]) -> type:
    return enum.IntEnum(name, [(v, i) for i, (v, _) in enumerate(values)])


def _cpp_enumerator(expr: str) -> str:
    return expr.rsplit("::", 1)[-1].strip()


def api_root() -> Path:
    """``../shared/tensorrt-api`` beside the repository (DEEPLAB_TRT_API overrides it)."""
    env = os.environ.get("DEEPLAB_TRT_API")
    return Path(env) if env else TENSORRT_API


@functools.lru_cache(maxsize=None)
def surface(version: str) -> Surface:
    return read_surface(api_root() / version)


def make_module(version: str) -> ModuleType:
    """A fresh ``tensorrt`` module for one release folder under ``api_root()`` (e.g. "10.16")."""
    s = surface(version)
    mod = ModuleType("tensorrt")
    mod.__spec__ = importlib.machinery.ModuleSpec("tensorrt", None)
    parts = (version.split(".") + ["0", "0", "0"])[:4]
    mod.__version__ = ".".join(parts)
    mod.nptype, mod.volume, mod.Dims = nptype, volume, Dims
    enums: dict[str, type] = {}
    for name, b in s.bindings.items():
        if b.kind == "enum":
            enums[name] = _enum(name, b.values)
            setattr(mod, name, enums[name])
    for name in s.functions & set(_FUNCTIONS):
        setattr(mod, name, _FUNCTIONS[name])
    for name, expr in s.attributes.items():  # trt.float32 = DataType.FLOAT, ...
        enum_name, _, enumerator = expr.rpartition("::")
        target = enums.get(enum_name.split("::")[-1])
        if target is not None:
            for v, cpp in s.bindings[enum_name.split("::")[-1]].values:
                if _cpp_enumerator(cpp) == enumerator:
                    setattr(mod, name, target[v])
    universe = {n for b in s.bindings.values() for n in b.members}
    for cls in _IMPLEMENTED.values():
        universe |= {n for k in cls.__mro__ for n in vars(k) if not n.startswith("_")}
    # classes, most-derived last so bases are built first
    built: dict[str, type] = {}

    def build(name: str) -> type | None:
        if name in built:
            return built[name]
        impl = _IMPLEMENTED.get(name)
        if impl is None or name not in s.bindings:
            return None
        allowed = frozenset(s.members(name))
        ns: dict[str, Any] = {"_trt_version": version, "_trt_allowed": allowed, "_trt_module": mod,
                              "_trt_denied": frozenset(universe - allowed), "__module__": "tensorrt"}
        for (scope, nested), nb in s.nested.items():
            if scope == name and nb.kind == "enum":
                e = _enum(nested, nb.values)
                ns[nested] = e
                if nb.export_values:
                    for v, _ in nb.values:
                        ns[v] = e[v]
        bases = tuple(b for b in (build(base) for base in s.bindings[name].bases) if b is not None)
        cls = _Filtered(name, (impl, *bases) if bases and not issubclass(impl, bases) else (impl,), ns)
        cls._trt_standin_own = True
        built[name] = cls
        return cls

    for name in _IMPLEMENTED:
        cls = build(name)
        if cls is not None:
            setattr(mod, name, cls)
    return mod


__all__ = ["MAGIC", "api_root", "inject_fault", "make_module", "surface"]
