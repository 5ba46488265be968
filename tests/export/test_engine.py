"""`python -m export engine`: CPU-side behaviour here; building and loading engines needs TensorRT and a GPU (gpu mark)."""
from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from export.calibration import fit_within, fixed_shape_batches, open_calibration

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
    assert r.stderr.count("\n") == 1 and "TensorRT is not installed" in r.stderr and "pip install tensorrt" in r.stderr
    assert not list(tmp_path.iterdir())


def test_bad_shapes_rejected_before_tensorrt(small_onnx, tmp_path):
    r = _cli(str(small_onnx), "--opt-shape", "1x3x512", "-o", str(tmp_path / "m.plan"))
    assert r.returncode == 1 and "NxCxHxW" in r.stderr and r.stderr.count("\n") == 1
    r = _cli(str(small_onnx), "--opt-shape", "1x3x321x321", "-o", str(tmp_path / "m.plan"))
    assert r.returncode == 1 and "multiples of the output stride 8" in r.stderr


def test_missing_model(tmp_path):
    r = _cli(str(tmp_path / "none.onnx"))
    assert r.returncode == 1 and "does not exist" in r.stderr


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
    from export.engine import build_engine
    from runtime.engine_info import check_engine, current_platform

    plan, cache = tmp_path / f"{precision}.plan", tmp_path / "timing.cache"
    info = build_engine(small_onnx, plan, precision=precision, opt_shape=(1, 3, 64, 64), min_shape=(1, 3, 32, 32),
                        max_shape=(2, 3, 128, 128), timing_cache=cache)
    assert plan.is_file() and cache.is_file() and info.precision == precision
    meta, got, compat = check_engine(plan, current_platform())
    assert compat.ok and got.profile["opt"] == [1, 3, 64, 64] and meta.precision == precision
    assert _load(plan) is not None


@pytest.mark.gpu
@trt_gpu
def test_build_int8_from_qdq(small_onnx, tmp_path):
    import cv2

    from export.engine import build_engine
    from export.int8 import quantize

    calib = tmp_path / "calib"
    calib.mkdir()
    for i in range(3):
        cv2.imwrite(str(calib / f"{i}.png"), np.random.default_rng(i).integers(0, 255, (64, 64, 3), np.uint8))
    qdq = tmp_path / "q.onnx"
    quantize(small_onnx, calib, qdq, method="minmax", progress=False)
    plan = tmp_path / "int8.plan"
    info = build_engine(qdq, plan, opt_shape=(1, 3, 64, 64), min_shape=(1, 3, 32, 32), max_shape=(1, 3, 128, 128))
    assert info.precision == "int8" and _load(plan) is not None


@pytest.mark.gpu
@trt_gpu
def test_parser_errors_name_the_node(tmp_path):
    import onnx
    from onnx import helper

    from export.engine import build_engine
    from runtime.metadata import ONNX_METADATA_KEY, ModelMeta

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
