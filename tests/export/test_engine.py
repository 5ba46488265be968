"""`python -m export engine`: CPU-side behaviour here; building and loading engines needs TensorRT and a GPU (gpu mark)."""
from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from export.calibration import CalibrationCache, fit_within, fixed_shape_batches, implicit_cache_key, open_calibration
from export.engine import BuildInterrupt, BuildOptions, build_engine, read_onnx
from export.fp16 import convert
from runtime.metadata import ModelMeta

REPO = Path(__file__).resolve().parents[2]
HAS_TRT = importlib.util.find_spec("tensorrt") is not None


def _gpu() -> bool:
    try:
        from runtime.engine_info import gpu_properties
    except ImportError:
        return False
    return gpu_properties() is not None


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "export", "engine", *args], capture_output=True, text=True, cwd=REPO)


@pytest.mark.skipif(HAS_TRT, reason="TensorRT is installed: the missing-TensorRT message cannot be shown")
def test_without_tensorrt_one_clear_line(small_onnx, tmp_path):
    r = _cli(str(small_onnx), "-o", str(tmp_path / "m.plan"))
    assert r.returncode == 1
    assert r.stderr.count("\n") == 1 and "TensorRT is not installed" in r.stderr and "[gpu-cu12]" in r.stderr
    assert not list(tmp_path.iterdir())


def test_bad_shapes_rejected_before_tensorrt(small_onnx, tmp_path):
    r = _cli(str(small_onnx), "--opt-shape", "1x3x512", "-o", str(tmp_path / "m.plan"))
    assert r.returncode == 1 and "NxCxHxW" in r.stderr and r.stderr.count("\n") == 1
    r = _cli(str(small_onnx), "--opt-shape", "1x3x321x321", "-o", str(tmp_path / "m.plan"))
    assert r.returncode == 1 and "multiples of the output stride 8" in r.stderr


def test_missing_model(tmp_path):
    r = _cli(str(tmp_path / "none.onnx"))
    assert r.returncode == 1 and "does not exist" in r.stderr


@pytest.fixture(scope="module")
def fp16_onnx(small_onnx, tmp_path_factory) -> Path:
    """The small model converted by `export fp16 --fp16-io`: fp16 weights and fp16 I/O."""
    path = tmp_path_factory.mktemp("fp16") / "small.fp16.onnx"
    convert(small_onnx, path, keep_io_types=False)
    return path


def test_int8_on_an_fp16_onnx_refused_before_tensorrt(fp16_onnx, tmp_path):
    """It would build FP16 and record int8: refused with the command that makes a real INT8 model, nothing written."""
    r = _cli(str(fp16_onnx), "--precision", "int8", "-o", str(tmp_path / "m.plan"))
    assert r.returncode == 1 and r.stderr.count("\n") == 1, r.stderr
    assert "fp16 weights and no Q/DQ nodes" in r.stderr and "python -m export int8" in r.stderr
    r = _cli(str(fp16_onnx), "--precision", "fp32", "-o", str(tmp_path / "m.plan"))
    assert r.returncode == 1 and "--precision fp16" in r.stderr
    assert not list(tmp_path.iterdir())


def test_calib_on_a_non_fp32_onnx_refused(fp16_onnx, tmp_path):
    with pytest.raises(ValueError, match="fp16 weights and no Q/DQ nodes"):  # --calib means int8
        build_engine(fp16_onnx, tmp_path / "m.plan", BuildOptions(calib=tmp_path))
    with pytest.raises(ValueError, match="only to --precision int8 on an FP32 ONNX"):
        build_engine(fp16_onnx, tmp_path / "m.plan", BuildOptions(calib=tmp_path, precision="fp16"))
    assert not list(tmp_path.iterdir())


def test_max_batch_contradicting_a_shape(small_onnx, tmp_path):
    r = _cli(str(small_onnx), "--max-batch", "4", "--opt-shape", "1x3x512x512", "-o", str(tmp_path / "m.plan"))
    assert r.returncode == 1 and "--max-batch 4 sets the batch range 1..4" in r.stderr
    r = _cli(str(small_onnx), "--max-batch", "0", "-o", str(tmp_path / "m.plan"))
    assert r.returncode == 1 and "--max-batch must be ≥ 1" in r.stderr


def test_read_onnx_io_types(small_onnx, fp16_onnx, tmp_path):
    fp32 = read_onnx(small_onnx)
    assert (fp32.precision, fp32.input_dtype, fp32.output_dtype) == ("fp32", "float32", "float32")
    fp16 = read_onnx(fp16_onnx)
    assert (fp16.precision, fp16.input_dtype, fp16.output_dtype) == ("fp16", "float16", "float16")
    kept = tmp_path / "kept.onnx"
    convert(small_onnx, kept, keep_io_types=True)
    assert (read_onnx(kept).input_dtype, read_onnx(kept).output_dtype) == ("float32", "float32")


def test_build_options_from_the_cli():
    from export.cli import build_parser

    args = build_parser().parse_args(["engine", "m.onnx", "--max-batch", "4", "--opt-shape", "4x3x320x320",
                                      "--calib", "data", "--calibrator", "minmax", "--timing-cache", "t.cache"])
    options = BuildOptions.from_args(args)
    assert options.max_batch == 4 and options.opt_shape == (4, 3, 320, 320) and options.min_shape is None
    assert options.calib == Path("data") and options.calibrator == "minmax" and options.timing_cache == Path("t.cache")


# --------------------------------------------------------------------------------------------------------------------
# Ctrl-C during a build


def test_sigint_during_a_build_is_kept_for_after_it():
    """TensorRT's binding swallows exceptions raised in callbacks, so inside the guard SIGINT only sets a flag that
    the callbacks read; the KeyboardInterrupt comes after the build returns."""
    previous = signal.getsignal(signal.SIGINT)
    with BuildInterrupt() as interrupt:
        assert not interrupt.cancelled
        os.kill(os.getpid(), signal.SIGINT)  # no exception here: the handler only sets the flag
        for _ in range(1000):  # let the interpreter run the Python-level handler
            if interrupt.requested:
                break
        assert interrupt.requested and interrupt.cancelled
        with pytest.raises(KeyboardInterrupt):
            interrupt.raise_pending()
    assert signal.getsignal(signal.SIGINT) is previous


def test_callback_errors_are_raised_after_the_build():
    with BuildInterrupt() as interrupt:
        interrupt.fail(ValueError("cannot decode calibration image x.png"))
        interrupt.fail(RuntimeError("a later one"))
        assert interrupt.cancelled and not interrupt.requested
    with pytest.raises(ValueError, match="x.png"):
        interrupt.raise_pending()
    caught = BuildInterrupt()
    caught.fail(KeyboardInterrupt())  # a Ctrl-C that reached a callback as an exception
    with pytest.raises(KeyboardInterrupt):
        caught.raise_pending()


# --------------------------------------------------------------------------------------------------------------------
# The implicit-calibration cache is keyed


def _images(directory: Path, count: int, seed: int = 0) -> Path:
    import cv2

    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        cv2.imwrite(str(directory / f"{i}.png"), rng.integers(0, 255, (40, 48, 3), np.uint8))
    return directory


def test_calibration_cache_key_covers_model_data_preprocessing_shape(tmp_path):
    data = _images(tmp_path / "a", 3)
    meta = ModelMeta(class_names=("a", "b"))
    base = dict(source=open_calibration(data), meta=meta, shape=(1, 3, 64, 64), onnx_sha256="0" * 64,
                calibrator="IInt8EntropyCalibrator2", tensorrt_version="10.3.0")
    key = implicit_cache_key(**base)
    assert implicit_cache_key(**base) == key
    variants = {
        "onnx_sha256": dict(base, onnx_sha256="1" * 64),
        "data_sha256": dict(base, source=open_calibration(_images(tmp_path / "b", 3, seed=1))),
        "preprocessing": dict(base, meta=ModelMeta(class_names=("a", "b"), mean=(0.0, 0.0, 0.0))),
        "shape": dict(base, shape=(1, 3, 128, 128)),
        "calibrator": dict(base, calibrator="IInt8MinMaxCalibrator"),
        "tensorrt_version": dict(base, tensorrt_version="10.13.0"),
    }
    for field, kwargs in variants.items():
        other = implicit_cache_key(**kwargs)
        assert [k for k in key if key[k] != other[k]] == [field]
    fewer = implicit_cache_key(**dict(base, source=open_calibration(data, max_images=2)))
    assert fewer["data_sha256"] != key["data_sha256"]
    (data / "0.png").write_bytes((data / "1.png").read_bytes())  # same names and count, other content
    assert implicit_cache_key(**base)["data_sha256"] != key["data_sha256"]


def test_calibration_cache_is_read_back_only_under_its_key(tmp_path):
    key = {"onnx_sha256": "a", "data_sha256": "b"}
    cache = CalibrationCache(tmp_path / "m.plan.calib.cache", key)
    assert cache.read() is None and cache.mismatch() is None  # nothing yet
    cache.write(b"TRT-100300-EntropyCalibration2\nimage: 3c010a14\n")
    assert cache.read() == b"TRT-100300-EntropyCalibration2\nimage: 3c010a14\n"
    assert json.loads(cache.key_path.read_text()) == key
    other = CalibrationCache(cache.path, {"onnx_sha256": "a", "data_sha256": "other data"})
    assert other.read() is None and "another data_sha256" in other.mismatch()
    cache.key_path.unlink()  # a cache from elsewhere (another tool, an older toolkit): no key
    assert cache.read() is None and "has no key file" in cache.mismatch()
    other.write(b"new")
    assert other.read() == b"new" and cache.read() is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.plan.calib.cache", "m.plan.calib.cache.key.json"]


def test_fit_within():
    assert fit_within(100, 200, 512, 512) == (100, 200)
    assert fit_within(1000, 500, 512, 512) == (512, 256)
    assert fit_within(300, 2000, 256, 512) == (76, 512)


def test_fixed_shape_batches(tmp_path):
    import cv2

    from runtime.metadata import ModelMeta

    meta = ModelMeta(class_names=("a", "b"))
    for i, (h, w) in enumerate([(40, 60), (200, 100), (64, 64), (10, 10), (50, 50)]):
        cv2.imwrite(str(tmp_path / f"{i}.png"), np.full((h, w, 3), 40 * i, np.uint8))
    batches = list(fixed_shape_batches(open_calibration(tmp_path), meta, (2, 3, 64, 64)))
    assert len(batches) == 2 and all(b.shape == (2, 3, 64, 64) and b.dtype == np.float32 for b in batches)
    # the 200×100 image was scaled to 64×32 and padded with zeros on the right
    assert (batches[0][1][:, :, 32:] == 0).all() and (batches[0][1][:, :, :32] != 0).any()


# --------------------------------------------------------------------------------------------------------------------
# Real builds: need TensorRT and a CUDA GPU. Never faked: skipped with the reason where either is missing.

_MISSING = [what for what, ok in (("TensorRT is not installed", HAS_TRT), ("no CUDA GPU", _gpu())) if not ok]
trt_gpu = pytest.mark.skipif(bool(_MISSING), reason="; ".join(_MISSING))


def _load(plan: Path):
    import tensorrt as trt

    runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
    return runtime.deserialize_cuda_engine(plan.read_bytes())


@pytest.mark.gpu
@trt_gpu
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_build_fp32_fp16_and_sidecar(small_onnx, tmp_path, precision):
    from runtime.engine_info import check_engine, current_platform

    plan, cache = tmp_path / f"{precision}.plan", tmp_path / "timing.cache"
    info = build_engine(small_onnx, plan, BuildOptions(precision=precision, opt_shape=(1, 3, 64, 64),
                                                       min_shape=(1, 3, 32, 32), max_shape=(2, 3, 128, 128),
                                                       timing_cache=cache))
    assert plan.is_file() and cache.is_file() and info.precision == precision
    meta, got, compat = check_engine(plan, current_platform())
    assert compat.ok and got.profile["opt"] == [1, 3, 64, 64] and meta.precision == precision
    assert _load(plan) is not None


@pytest.mark.gpu
@trt_gpu
def test_build_int8_from_qdq(small_onnx, tmp_path):
    import cv2

    from export.int8 import quantize

    calib = tmp_path / "calib"
    calib.mkdir()
    for i in range(3):
        cv2.imwrite(str(calib / f"{i}.png"), np.random.default_rng(i).integers(0, 255, (64, 64, 3), np.uint8))
    qdq = tmp_path / "q.onnx"
    quantize(small_onnx, calib, qdq, method="minmax", progress=False)
    plan = tmp_path / "int8.plan"
    info = build_engine(qdq, plan, BuildOptions(opt_shape=(1, 3, 64, 64), min_shape=(1, 3, 32, 32),
                                                max_shape=(1, 3, 128, 128)))
    assert info.precision == "int8" and _load(plan) is not None


@pytest.mark.gpu
@trt_gpu
def test_parser_errors_name_the_node(tmp_path):
    import onnx
    from onnx import helper

    from runtime.metadata import ONNX_METADATA_KEY

    node = helper.make_node("NoSuchOp", ["image"], ["logits"], name="mystery")
    image = helper.make_tensor_value_info("image", onnx.TensorProto.FLOAT, [1, 3, "h", "w"])
    logits = helper.make_tensor_value_info("logits", onnx.TensorProto.FLOAT, None)
    model = helper.make_model(helper.make_graph([node], "g", [image], [logits]),
                              opset_imports=[helper.make_opsetid("", 17)])
    entry = model.metadata_props.add()
    entry.key, entry.value = ONNX_METADATA_KEY, ModelMeta(class_names=("a",)).to_json()
    path = tmp_path / "bad.onnx"
    onnx.save(model, str(path))
    with pytest.raises(RuntimeError, match=r"node 0 'mystery' \(NoSuchOp\)"):
        build_engine(path, tmp_path / "bad.plan")
    assert not (tmp_path / "bad.plan").exists()
