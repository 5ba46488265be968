"""Engine sidecars and the engine/platform compatibility check (pure; no TensorRT or GPU needed)."""
from __future__ import annotations

import json
import shlex
from dataclasses import asdict

import pytest

from runtime.engine_info import (
    EngineInfo,
    EngineInfoError,
    Platform,
    check_compatibility,
    check_engine,
    current_platform,
    needs_host_code,
    read_sidecar,
    rebuild_command,
    sidecar_path,
    version_compatible_ok,
    write_sidecar,
)
from runtime.metadata import ModelMeta

META = ModelMeta(class_names=("background", "car", "person"))
PROFILE = {"min": [1, 3, 256, 256], "opt": [1, 3, 512, 512], "max": [1, 3, 1024, 1024]}


def info(**kw) -> EngineInfo:
    base = dict(tensorrt_version="10.3.0.26", gpu_name="Orin", compute_capability="8.7", precision="int8",
                profile=PROFILE, onnx_sha256="ab" * 32, built_at="2026-11-24T08:00:00Z",
                onnx_path="models/demo.int8.onnx")
    base.update(kw)
    return EngineInfo(**base)


def write_raw(engine, engine_dict, meta=None):
    meta = json.loads(META.to_json()) if meta is None else meta
    sidecar_path(engine).write_text(json.dumps({"meta": meta, "engine": engine_dict}))


def test_sidecar_round_trip(tmp_path):
    engine = tmp_path / "model.plan"
    path = write_sidecar(engine, META, info(dla_core=0))
    assert path == sidecar_path(engine) == tmp_path / "model.plan.json"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp file left
    meta, got = read_sidecar(engine)
    assert meta == META and got == info(dla_core=0)
    d = json.loads(path.read_text())
    assert set(d) == {"meta", "engine"}
    assert {"tensorrt_version", "gpu_name", "compute_capability", "precision", "profile", "onnx_sha256",
            "version_compatible", "hardware_compatibility", "built_at"} <= set(d["engine"])


def test_sidecar_errors(tmp_path):
    engine = tmp_path / "model.plan"
    with pytest.raises(EngineInfoError, match="no metadata sidecar.*python -m export engine"):
        read_sidecar(engine)
    sidecar_path(engine).write_text("{not json")
    with pytest.raises(EngineInfoError, match="not valid JSON"):
        read_sidecar(engine)
    sidecar_path(engine).write_text(json.dumps({"meta": json.loads(META.to_json())}))
    with pytest.raises(EngineInfoError, match="'meta' and 'engine'"):
        read_sidecar(engine)
    write_raw(engine, {"gpu_name": "x"})
    with pytest.raises(EngineInfoError, match="lacks tensorrt_version"):
        read_sidecar(engine)
    write_raw(engine, {}, meta=json.loads(META.to_json()) | {"precision": "int4"})
    with pytest.raises(EngineInfoError, match="precision"):
        read_sidecar(engine)
    write_raw(engine, {**asdict(info()), "profile": {"min": [1, 3]}})
    with pytest.raises(EngineInfoError, match="profile"):
        read_sidecar(engine)


def test_unknown_engine_keys_are_tolerated(tmp_path):
    engine = tmp_path / "m.plan"
    write_raw(engine, {**asdict(info()), "future_field": 1})
    assert read_sidecar(engine)[1] == info()


def test_same_platform_is_ok():
    c = check_compatibility(info(), Platform("10.3.0.26", "Orin", "8.7"), "m.plan")
    assert c.ok and not c.warnings and c.message("m.plan") == ""


def test_unknown_platform_fields_are_skipped():
    assert check_compatibility(info(), Platform(None, None, None), "m.plan").ok


def test_other_tensorrt_version():
    c = check_compatibility(info(), Platform("10.13.0.35", "Orin", "8.7"), "m.plan")
    assert not c.ok
    msg = c.message("m.plan")
    assert "built by TensorRT 10.3.0.26, this is TensorRT 10.13.0.35" in msg
    assert "python -m export engine models/demo.int8.onnx -o m.plan --precision int8" in msg
    # a version reported with fewer parts compares on the parts both have
    assert check_compatibility(info(), Platform("10.3.0", "Orin", "8.7"), "m.plan").ok


def test_other_gpu():
    c = check_compatibility(info(), Platform("10.3.0.26", "NVIDIA H100", "9.0"), "m.plan")
    assert not c.ok and "built for compute capability 8.7 (Orin), this GPU (NVIDIA H100) is 9.0" in c.problems[0]
    c = check_compatibility(info(), Platform("10.3.0.26", "Orin NX", "8.7"), "m.plan")
    assert c.ok and "Orin NX" in c.warnings[0]


def test_both_differ_names_both():
    c = check_compatibility(info(), Platform("8.6.2", "Xavier", "7.2"), "m.plan")
    assert len(c.problems) == 2


@pytest.mark.parametrize("built,running,ok", [
    ("8.6.1", "8.6.2", True), ("8.6.1", "10.3.0", True), ("8.6.1", "11.4.0", False), ("8.5.2", "8.6.1", False),
    ("10.3.0", "10.13.0", True), ("10.3.0", "11.4.0", True), ("10.13.0", "10.3.0", False),
    ("11.4.0", "10.16.1", False), ("11.0.0", "11.4.0", True), ("10.3.0", "10.3.0", True),
])
def test_version_compatible_rules(built, running, ok):
    assert version_compatible_ok(built, running) is ok
    vc = info(tensorrt_version=built, version_compatible=True)
    assert check_compatibility(vc, Platform(running), "m.plan").ok is ok
    assert needs_host_code(vc) and not needs_host_code(info())


def test_hardware_compatibility_levels():
    amp = info(gpu_name="NVIDIA A100", compute_capability="8.0", hardware_compatibility="ampere_plus")
    assert check_compatibility(amp, Platform("10.3.0.26", "NVIDIA L4", "8.9"), "m").ok
    assert not check_compatibility(amp, Platform("10.3.0.26", "Tesla T4", "7.5"), "m").ok
    same = info(compute_capability="8.9", gpu_name="L4", hardware_compatibility="same_compute_capability")
    c = check_compatibility(same, Platform("10.3.0.26", "RTX 4090", "8.9"), "m")
    assert c.ok and not c.warnings
    assert not check_compatibility(same, Platform("10.3.0.26", "A10", "8.6"), "m").ok


def test_rebuild_command_round_trips_options():
    cmd = rebuild_command(info(version_compatible=True, hardware_compatibility="ampere_plus", dla_core=1,
                               onnx_path="my models/x.onnx"), "out dir/x.plan")
    args = shlex.split(cmd)
    assert args[:6] == ["python", "-m", "export", "engine", "my models/x.onnx", "-o"]
    assert args[args.index("--opt-shape") + 1] == "1x3x512x512"
    assert "--version-compatible" in args and args[args.index("--hardware-compatibility") + 1] == "ampere_plus"
    assert args[args.index("--dla-core") + 1] == "1"
    assert "MODEL.onnx" in rebuild_command(info(onnx_path=""), "x.plan")


def test_check_engine(tmp_path):
    engine = tmp_path / "m.plan"
    write_sidecar(engine, META, info())
    meta, got, compat = check_engine(engine, Platform("10.3.0.26", "Orin", "8.7"))
    assert meta == META and compat.ok
    with pytest.raises(EngineInfoError, match="Rebuild it here with:\n  python -m export engine"):
        check_engine(engine, Platform("11.4.0", "Orin", "8.7"))


def test_current_platform_without_tensorrt_or_gpu():
    p = current_platform()
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        assert p.tensorrt_version is None
    assert (p.gpu_name is None) == (p.compute_capability is None)


def test_version_rules():
    """The version rules every check above builds on (runtime._rules, the C++ runtime's own: one test list)."""
    from runtime import _rules

    assert _rules.version_tuple("TensorRT 10.3.0.26-1+cuda12") == [10, 3, 0, 26]
    assert _rules.same_version("10.3", "10.3.0.26") and _rules.same_version("10.3.0.26", "10.3.0")
    assert not _rules.same_version("10.3.0", "10.16.1") and not _rules.same_version("", "10.3")
    assert check_compatibility(info(tensorrt_version="10.3"), Platform("10.3.0.26"), "m").ok


def test_max_batch_is_the_profiles_largest_n():
    from runtime.engine_info import max_batch

    profile = {"min": [1, 3, 64, 64], "opt": [4, 3, 64, 64], "max": [8, 3, 64, 64]}
    assert max_batch(profile) == 8 and info(profile=profile).max_batch == 8
