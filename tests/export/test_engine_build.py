"""`python -m export engine` through the TensorRT stand-ins of tests/support, for the builder's own decisions: the
refused precisions, --max-batch, the keyed implicit-calibration cache and its calibration profile, errors raised in
TensorRT's callbacks, and a bad timing cache. (The engine path end to end, Ctrl-C included, is
tests/runtime/test_engine_path.py.)"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from export import engine as engine_module
from export.calibration import CalibrationError
from export.engine import BuildOptions, build_engine
from export.fp16 import convert
from export.trt_compat import CompatError
from runtime.engine_info import read_sidecar

trt_standin = pytest.importorskip("trt_standin", reason="the TensorRT stand-in of tests/support is not here")

REPO = Path(__file__).resolve().parents[2]
FIXED = {"min_shape": (1, 3, 64, 64), "opt_shape": (1, 3, 64, 64), "max_shape": (1, 3, 64, 64)}

pytestmark = pytest.mark.skipif(not trt_standin.available_versions(),
                                reason=f"TensorRT binding sources not found at {trt_standin.api_root()}")


@pytest.fixture(scope="module")
def fp16_onnx(small_onnx, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("fp16") / "small.fp16.onnx"
    convert(small_onnx, path, keep_io_types=False)
    return path


@pytest.fixture
def calib(tmp_path) -> Path:
    """Four of the shipped calibration images, copied (tests change them)."""
    out = tmp_path / "calib"
    out.mkdir()
    for p in sorted((REPO / "calib_data").glob("*.jpg"))[:4]:
        shutil.copy(p, out / p.name)
    return out


@pytest.mark.parametrize("release", ["8.5.3", "10.3.0", "11.1"])
def test_int8_on_an_fp16_onnx_is_refused_with_tensorrt_present(fp16_onnx, tmp_path, release):
    """Before the fix this built FP16 and recorded int8 in the sidecar."""
    r = subprocess.run([sys.executable, "-m", "export", "engine", str(fp16_onnx), "--precision", "int8",
                        "-o", str(tmp_path / "m.plan")], capture_output=True, text=True, cwd=tmp_path,
                       env=trt_standin.subprocess_env(release), timeout=300)
    assert r.returncode == 1 and "an INT8 build of it would be FP16" in r.stderr, r.stderr
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("release", ["8.6.1", "10.16", "11.1"])
def test_fp16_io_engine_records_its_io_types(trt_standin_for, fp16_onnx, tmp_path, release):
    trt_standin_for(release)
    plan = tmp_path / "m.plan"
    info = build_engine(fp16_onnx, plan, BuildOptions(**FIXED))
    _, recorded = read_sidecar(plan)
    assert info.precision == recorded.precision == "fp16"
    assert (recorded.input_dtype, recorded.output_dtype) == ("float16", "float16")


@pytest.mark.parametrize("release", ["8.5.3", "10.16", "11.1"])
def test_max_batch_builds_a_batch_range(trt_standin_for, small_onnx, tmp_path, release):
    """--max-batch 4: profile N 1..4 (opt 4), recorded; the engine runs batches of 1 to 4 with ONNX Runtime's logits."""
    trt_standin_for(release)
    from runtime import Segmenter

    plan = tmp_path / "m.plan"
    info = build_engine(small_onnx, plan, BuildOptions(opt_shape=(4, 3, 64, 64), max_shape=(4, 3, 64, 64),
                                                       min_shape=(1, 3, 64, 64), max_batch=4))
    assert info.profile == {"min": [1, 3, 64, 64], "opt": [4, 3, 64, 64], "max": [4, 3, 64, 64]}
    assert read_sidecar(plan)[1].max_batch == 4
    engine = Segmenter(plan, crf=None, upsample_device="cpu")
    assert engine.backend.max_batch == 4
    reference = Segmenter(small_onnx, backend="onnxruntime", crf=None, upsample_device="cpu", threads=1)
    x = np.random.default_rng(0).normal(0, 50, (4, 3, 64, 64)).astype(np.float32)
    for n in (1, 3, 4):
        np.testing.assert_allclose(engine.backend.infer(x[:n]), reference.backend.infer(x[:n]), rtol=1e-4, atol=1e-3)
    engine.close()


def _count_batches(monkeypatch) -> list[int]:
    """Count the calibration batches the build reads (a spy on the real batch generator)."""
    served: list[int] = []
    real = engine_module.fixed_shape_batches

    def spy(*args, **kwargs):
        for batch in real(*args, **kwargs):
            served.append(batch.shape[0])
            yield batch

    monkeypatch.setattr(engine_module, "fixed_shape_batches", spy)
    return served


@pytest.mark.parametrize("release", ["8.6.1", "10.16"])
def test_calibration_cache_is_reused_only_for_the_same_model_and_data(trt_standin_for, small_onnx, calib, tmp_path,
                                                                      monkeypatch, capsys, release):
    trt = trt_standin_for(release)
    served = _count_batches(monkeypatch)
    plan, cache = tmp_path / "m.plan", tmp_path / "m.plan.calib.cache"
    options = BuildOptions(calib=calib, **FIXED)
    assert build_engine(small_onnx, plan, options).precision == "int8"  # --calib means int8
    assert served == [1, 1, 1, 1] and cache.is_file()
    key = json.loads(Path(f"{cache}.key.json").read_text())
    assert key["shape"] == [1, 3, 64, 64] and key["tensorrt_version"] == trt.__version__

    served.clear()
    build_engine(small_onnx, plan, options)  # same ONNX, data, preprocessing: the cache is used
    assert served == []

    (calib / sorted(p.name for p in calib.iterdir())[0]).unlink()  # other data: calibrate again
    capsys.readouterr()
    build_engine(small_onnx, plan, options)
    assert served == [1, 1, 1] and "made with another data_sha256: calibrating again" in capsys.readouterr().err
    assert json.loads(Path(f"{cache}.key.json").read_text())["data_sha256"] != key["data_sha256"]

    import onnx

    proto = onnx.load(str(small_onnx))
    proto.doc_string = "the same network, another file"  # another SHA-256
    other_model = tmp_path / "other.onnx"
    onnx.save(proto, str(other_model))
    served.clear()
    build_engine(other_model, plan, options)
    assert served == [1, 1, 1] and "another onnx_sha256" in capsys.readouterr().err


@pytest.mark.parametrize("release", ["8.6.1", "10.16"])
def test_calibration_gets_its_own_profile(trt_standin_for, small_onnx, calib, tmp_path, monkeypatch, release):
    trt = trt_standin_for(release)
    seen = {}
    real = trt.IBuilderConfig.set_calibration_profile

    def record(self, profile):
        seen["shapes"] = profile.get_shape("image")
        return real(self, profile)

    monkeypatch.setattr(trt.IBuilderConfig, "set_calibration_profile", record)
    build_engine(small_onnx, tmp_path / "m.plan", BuildOptions(calib=calib, min_shape=(1, 3, 32, 32),
                                                                opt_shape=(1, 3, 64, 64), max_shape=(1, 3, 128, 128)))
    assert [tuple(s) for s in seen["shapes"]] == [(1, 3, 64, 64)] * 3


@pytest.mark.parametrize("release", ["8.6.1", "10.16"])
def test_an_error_inside_the_calibrator_is_raised_as_itself(trt_standin_for, small_onnx, calib, tmp_path, release):
    """TensorRT's binding swallows it and the build fails; the user gets the real cause, and nothing is written."""
    trt_standin_for(release)
    (calib / "broken.jpg").write_bytes(b"not a jpeg")
    plan = tmp_path / "m.plan"
    with pytest.raises(CalibrationError, match="broken.jpg"):
        build_engine(small_onnx, plan, BuildOptions(calib=calib, **FIXED))
    assert not plan.exists() and not Path(f"{plan}.json").exists()
    assert not Path(f"{plan}.calib.cache").exists() and not Path(f"{plan}.calib.cache.key.json").exists()


@pytest.mark.parametrize("release", ["8.5.3", "10.7.0" if "10.7.0" in trt_standin.available_versions() else "10.3.0",
                                     "10.16", "11.1"])
def test_dla_by_release(trt_standin_for, small_onnx, tmp_path, release):
    """Releases without DLA refuse --dla-core up front; the others ask the device, which has no DLA core here."""
    trt_standin_for(release)
    plan = tmp_path / "m.plan"
    expected = "no DLA support" if release in ("10.16", "11.1") else "this device has 0 DLA core"
    with pytest.raises((CompatError, RuntimeError), match=expected):
        build_engine(small_onnx, plan, BuildOptions(precision="fp16" if release != "11.1" else None, dla_core=0,
                                                    **FIXED))
    assert not plan.exists()


def test_a_bad_timing_cache_is_one_clear_error(trt_standin_for, small_onnx, tmp_path):
    trt_standin_for("10.16")
    bad = tmp_path / "timing.cache"
    bad.write_bytes(b"something else")
    with pytest.raises(RuntimeError, match="cannot read the timing cache .*timing.cache: delete it"):
        build_engine(small_onnx, tmp_path / "m.plan", BuildOptions(timing_cache=bad, **FIXED))
    assert bad.read_bytes() == b"something else"
