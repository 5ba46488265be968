"""Version-dependent engine-build decisions for every TensorRT version users run (pure functions, no TensorRT)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from shared_data import TENSORRT_API, require

from export.trt_compat import (
    CompatError,
    ParserErrorInfo,
    calibration_profile,
    check_precision,
    dla_supported,
    documented_features,
    format_parser_errors,
    hardware_level,
    network_flags_value,
    onnx_precision_hint,
    parse_shape,
    parse_version,
    plan_build,
    probe,
    resolve_precision,
    resolve_profile,
)

VERSIONS = ["8.5.2.2", "8.6.2", "10.0.1", "10.3.0", "10.7.0", "10.13.0", "10.16.1", "11.4.0", "11.4.1"]


def test_parse_version():
    assert parse_version("8.5.2.2") == (8, 5, 2)
    assert parse_version("10.3") == (10, 3, 0)
    assert parse_version("11.4.0.106") == (11, 4, 0)
    with pytest.raises(ValueError):
        parse_version("trt")


@pytest.mark.parametrize("version", VERSIONS)
def test_documented_features(version):
    f = documented_features(version)
    major = f.major
    assert ("EXPLICIT_BATCH" in f.network_flags) == (major < 11)  # deprecated in 10, gone in 11
    assert ("STRONGLY_TYPED" in f.network_flags) == (major >= 10)
    assert ("FP16" in f.builder_flags) == ("INT8" in f.builder_flags) == (major < 11)
    assert f.implicit_calibrators == f.calibration_profile == (major < 11)
    assert ("SAME_COMPUTE_CAPABILITY" in f.hardware_levels) == (f.version >= (10, 10, 0))
    assert f.progress_monitor == (major >= 10)
    assert ("VERSION_COMPATIBLE" in f.builder_flags) == (f.version >= (8, 6, 0))


@pytest.mark.parametrize("version", VERSIONS)
def test_fp32_build(version):
    plan = plan_build(documented_features(version), "fp32", "fp32")
    assert plan.network_flags == (("EXPLICIT_BATCH",) if version.startswith("8.") else ())
    assert plan.builder_flags == ()
    assert plan.calibrator is None


@pytest.mark.parametrize("version", VERSIONS)
def test_int8_from_qdq(version):
    f = documented_features(version)
    plan = plan_build(f, "int8", "int8")
    if f.major == 8:  # weak typing only: Q/DQ needs the INT8 flag
        assert plan.network_flags == ("EXPLICIT_BATCH",) and plan.builder_flags == ("INT8",)
    elif f.major == 10:  # strongly typed, precision flags would be rejected
        assert plan.network_flags == ("STRONGLY_TYPED",) and plan.builder_flags == ()
    else:  # 11: always strongly typed, no flags exist
        assert plan.network_flags == () and plan.builder_flags == ()
    assert plan.calibrator is None


@pytest.mark.parametrize("version", VERSIONS)
def test_fp16_from_fp16_onnx(version):
    f = documented_features(version)
    plan = plan_build(f, "fp16", "fp16")
    assert plan.builder_flags == (("FP16",) if f.major == 8 else ())
    assert plan.strongly_typed == (f.major == 10)


@pytest.mark.parametrize("version", VERSIONS)
def test_fp16_flag_on_fp32_onnx(version):
    f = documented_features(version)
    if f.major >= 11:
        with pytest.raises(CompatError, match="python -m export fp16"):
            plan_build(f, "fp16", "fp32")
    else:
        plan = plan_build(f, "fp16", "fp32")
        assert plan.builder_flags == ("FP16",) and not plan.strongly_typed


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("calibrator", ["entropy", "minmax"])
def test_implicit_calibration(version, calibrator):
    f = documented_features(version)
    if f.major >= 11:
        with pytest.raises(CompatError, match="removed in 11.*python -m export int8"):
            plan_build(f, "int8", "fp32", calibrator=calibrator)
        return
    plan = plan_build(f, "int8", "fp32", calibrator=calibrator)
    assert plan.builder_flags == ("INT8",)
    assert plan.calibrator == {"entropy": "IInt8EntropyCalibrator2", "minmax": "IInt8MinMaxCalibrator"}[calibrator]
    assert not plan.strongly_typed
    assert any("deprecated" in n for n in plan.notes)


@pytest.mark.parametrize("version", VERSIONS)
def test_int8_without_qdq_or_calibrator(version):
    f = documented_features(version)
    with pytest.raises(CompatError, match="no Q/DQ nodes.*python -m export int8") as e:
        plan_build(f, "int8", "fp32")
    assert ("--calib DIR" in str(e.value)) == (f.major < 11)


@pytest.mark.parametrize("version", VERSIONS)
def test_int8_on_an_fp16_onnx_is_refused(version):
    """An fp16 ONNX without Q/DQ builds FP16 on every version: asking for int8 must not record int8 in the sidecar."""
    with pytest.raises(CompatError, match="fp16 weights and no Q/DQ.*would be FP16.*python -m export int8"):
        plan_build(documented_features(version), "int8", "fp16")


def test_check_precision_every_pair():
    ok = {("fp32", "fp32"), ("fp16", "fp32"), ("fp16", "fp16"), ("int8", "int8")}
    for precision in ("fp32", "fp16", "int8"):
        for onnx_precision in ("fp32", "fp16", "int8"):
            if (precision, onnx_precision) in ok:
                check_precision(precision, onnx_precision)
            elif (precision, onnx_precision) == ("int8", "fp32"):
                check_precision(precision, onnx_precision, "entropy")  # int8 from fp32 only by calibrating
            else:
                with pytest.raises(CompatError):
                    check_precision(precision, onnx_precision)


def test_resolve_precision():
    assert resolve_precision(None, "fp16") == "fp16"
    assert resolve_precision(None, "fp32", calibrating=True) == "int8"
    assert resolve_precision("fp16", "fp32", calibrating=True) == "fp16"  # then refused by check_precision
    with pytest.raises(CompatError, match="only to --precision int8"):
        check_precision(resolve_precision("fp16", "fp32", calibrating=True), "fp32", "entropy")


def test_precision_contradicting_the_onnx():
    f = documented_features("10.3")
    with pytest.raises(CompatError, match="Q/DQ"):
        plan_build(f, "fp16", "int8")
    with pytest.raises(CompatError, match="fp16 weights"):
        plan_build(f, "fp32", "fp16")
    with pytest.raises(CompatError, match="only to --precision int8"):
        plan_build(f, "int8", "int8", calibrator="entropy")
    with pytest.raises(CompatError, match="calibrator must be"):
        plan_build(f, "int8", "fp32", calibrator="legacy")
    with pytest.raises(CompatError, match="precision must be"):
        plan_build(f, "bf16", "fp32")


@pytest.mark.parametrize("version", VERSIONS)
def test_version_compatible(version):
    f = documented_features(version)
    if f.version < (8, 6, 0):
        with pytest.raises(CompatError, match="≥ 8.6"):
            plan_build(f, "fp32", "fp32", version_compatible=True)
    else:
        assert "VERSION_COMPATIBLE" in plan_build(f, "fp32", "fp32", version_compatible=True).builder_flags


@pytest.mark.parametrize("version", VERSIONS)
def test_hardware_compatibility(version):
    f = documented_features(version)
    if f.version < (8, 6, 0):
        with pytest.raises(CompatError, match="needs ≥ 8.6"):
            plan_build(f, "fp32", "fp32", hardware_compatibility="ampere_plus")
    else:
        assert plan_build(f, "fp32", "fp32", hardware_compatibility="ampere_plus").hardware_level == "AMPERE_PLUS"
    if f.version >= (10, 10, 0):
        plan = plan_build(f, "fp32", "fp32", hardware_compatibility="same_compute_capability")
        assert plan.hardware_level == "SAME_COMPUTE_CAPABILITY"
    else:
        with pytest.raises(CompatError, match="no hardware compatibility level same_compute_capability"):
            plan_build(f, "fp32", "fp32", hardware_compatibility="same_compute_capability")
    with pytest.raises(CompatError, match="must be one of"):
        hardware_level(f, "turing")


@pytest.mark.parametrize("version", VERSIONS)
def test_dla(version):
    f = documented_features(version)
    if not dla_supported(f.version):
        with pytest.raises(CompatError, match="no DLA support: 10.7 was the last.*11.4.1"):
            plan_build(f, "fp32", "fp32", dla_core=0)
        return
    plan = plan_build(f, "fp16", "fp32" if f.major < 11 else "fp16", dla_core=0)
    assert "GPU_FALLBACK" in plan.builder_flags
    assert any("DLA" in n for n in plan_build(f, "fp32", "fp32", dla_core=1).notes)
    with pytest.raises(CompatError, match="≥ 0"):
        plan_build(f, "fp32", "fp32", dla_core=-1)


def test_dla_releases():
    """DLA through 10.7, none from 10.8 to 11.4.0 (10.13/10.16 on JetPack 7 included), back in 11.4.1 (AGX Orin)."""
    for version in ("8.5.2", "8.6.2", "10.3.0", "10.7.0", "11.4.1", "11.5.0"):
        assert dla_supported(parse_version(version)), version
    for version in ("10.8.0", "10.13.3", "10.16.1", "11.1.0", "11.4.0"):
        assert not dla_supported(parse_version(version)), version


def test_network_flags_value():
    assert network_flags_value({"EXPLICIT_BATCH": 0, "STRONGLY_TYPED": 1}, ["EXPLICIT_BATCH"]) == 1
    assert network_flags_value({"EXPLICIT_BATCH": 0, "STRONGLY_TYPED": 1}, ["STRONGLY_TYPED"]) == 2
    assert network_flags_value({}, []) == 0


def test_onnx_precision_hint():
    assert onnx_precision_hint(["Conv", "QuantizeLinear", "DequantizeLinear"], ["float32"]) == "int8"
    assert onnx_precision_hint(["Conv", "Cast"], ["float16"]) == "fp16"
    assert onnx_precision_hint(["Conv"], ["float32"]) == "fp32"


def test_parser_errors_named_on_8x_from_the_onnx_graph():
    nodes = [("conv1", "Conv"), ("resize", "Resize")]
    text = format_parser_errors([ParserErrorInfo("UNSUPPORTED_NODE", "Resize mode cubic", node=1)], nodes)
    assert "node 1 'resize' (Resize): Resize mode cubic [UNSUPPORTED_NODE]" in text
    text = format_parser_errors([ParserErrorInfo("INVALID_GRAPH", "bad", node=0, node_name="c", op_type="Conv"),
                                 ParserErrorInfo("MODEL_DESERIALIZE_FAILED", "truncated")], nodes)
    assert "2 error(s)" in text and "node 0 'c' (Conv): bad" in text and "graph: truncated" in text


def test_shapes_and_profile():
    assert parse_shape("1x3x512x512") == (1, 3, 512, 512)
    for bad in ("1x3x512", "axbxcxd", "0x3x8x8"):
        with pytest.raises(CompatError):
            parse_shape(bad)
    mn, opt, mx = resolve_profile(None, (1, 3, 320, 480), None)
    assert mn == (1, 3, 256, 256) and opt == (1, 3, 320, 480) and mx == (1, 3, 1024, 1024)
    assert resolve_profile(None, None, None)[1] == (1, 3, 512, 512)
    with pytest.raises(CompatError, match="min ≤ opt ≤ max"):
        resolve_profile((1, 3, 512, 512), (1, 3, 256, 256), None)
    with pytest.raises(CompatError, match="multiples"):
        resolve_profile(None, (1, 3, 321, 321), None)
    with pytest.raises(CompatError, match="3 channels"):
        resolve_profile(None, (1, 1, 320, 320), None)


def test_max_batch_profile():
    mn, opt, mx = resolve_profile(None, None, None, max_batch=4)
    assert (mn[0], opt[0], mx[0]) == (1, 4, 4) and mn[2:] == (256, 256) and mx[2:] == (1024, 1024)
    mn, opt, mx = resolve_profile((1, 3, 320, 320), (4, 3, 320, 320), None, max_batch=4)
    assert (mn, opt, mx[0]) == ((1, 3, 320, 320), (4, 3, 320, 320), 4)
    mn, opt, mx = resolve_profile(None, None, (8, 3, 512, 512), max_batch=8)  # a fixed-size batch-8 engine
    assert opt == mx == (8, 3, 512, 512) and mn[0] == 1
    with pytest.raises(CompatError, match="--max-batch 4 sets the batch range 1..4: --opt-shape 1x3x512x512 must "
                                          "have N = 4"):
        resolve_profile(None, (1, 3, 512, 512), None, max_batch=4)
    with pytest.raises(CompatError, match="--min-shape .* N = 1"):
        resolve_profile((2, 3, 256, 256), None, None, max_batch=4)
    with pytest.raises(CompatError, match="≥ 1"):
        resolve_profile(None, None, None, max_batch=0)


def test_calibration_profile_is_the_opt_shape():
    profile = resolve_profile(None, (2, 3, 320, 480), None)
    assert calibration_profile(profile) == ((2, 3, 320, 480),) * 3


def _binding_enum(version_dir: Path, enum: str) -> set[str]:
    """The ``.value("NAME"`` entries of ``py::enum_<enum>`` in a release's Python binding sources."""
    text = "\n".join(p.read_text(errors="replace") for p in (version_dir / "python" / "src").rglob("*.cpp"))
    m = re.search(r"py::enum_<" + enum + r">\((.*?);", text, re.S)
    return set(re.findall(r'\.value\("([A-Z0-9_]+)"', m.group(1))) if m else set()


def _binding_has(version_dir: Path, name: str) -> bool:
    text = "\n".join(p.read_text(errors="replace") for p in (version_dir / "python" / "src").rglob("*.cpp"))
    return f'"{name}"' in text


@pytest.mark.parametrize("release", ["8.5.3", "8.6.1", "10.3.0", "10.13.3", "10.16", "11.1"])
def test_documented_features_match_the_binding_sources(release):
    """documented_features() against NVIDIA's own binding sources of each release: every name it claims exists."""
    src = require(TENSORRT_API / release, f"TensorRT {release} binding sources")
    f = documented_features(release)
    assert f.hardware_levels == _binding_enum(src, "HardwareCompatibilityLevel")
    assert {"FP16", "INT8", "GPU_FALLBACK", "VERSION_COMPATIBLE"} & f.builder_flags == \
        {"FP16", "INT8", "GPU_FALLBACK", "VERSION_COMPATIBLE"} & _binding_enum(src, "BuilderFlag")
    assert f.network_flags == {"EXPLICIT_BATCH", "STRONGLY_TYPED"} & _binding_enum(src, "NetworkDefinitionCreationFlag")
    assert f.calibration_profile == _binding_has(src, "set_calibration_profile")
    assert f.implicit_calibrators == _binding_has(src, "IInt8EntropyCalibrator2") == _binding_has(
        src, "IInt8MinMaxCalibrator")
    assert f.progress_monitor == _binding_has(src, "IProgressMonitor")
    assert f.parser_error_node_names == _binding_has(src, "node_operator")


class _Enum:
    def __init__(self, *names):
        self.__members__ = {n: i for i, n in enumerate(names)}


def test_probe_reads_attributes_only():
    # A plain namespace with the attributes probe() reads: no behaviour is faked, only the enum listings.
    ns = type("NS", (), {})()
    ns.__version__ = "10.3.0.26"
    ns.BuilderFlag = _Enum("FP16", "INT8", "VERSION_COMPATIBLE", "GPU_FALLBACK")
    ns.NetworkDefinitionCreationFlag = _Enum("EXPLICIT_BATCH", "STRONGLY_TYPED")
    ns.HardwareCompatibilityLevel = _Enum("NONE", "AMPERE_PLUS")
    ns.IProgressMonitor = object
    f = probe(ns)
    assert f.version == (10, 3, 0) and f.progress_monitor and not f.implicit_calibrators
    assert "STRONGLY_TYPED" in f.network_flags and f.hardware_levels == {"NONE", "AMPERE_PLUS"}


def test_probe_real_tensorrt_when_installed():
    trt = pytest.importorskip("tensorrt", reason="TensorRT is not installed here")
    f = probe(trt)
    assert f.major >= 8
