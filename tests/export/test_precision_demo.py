"""The bundled demo model in INT8 (calibrated on calib_data/) and FP16 agrees with FP32 on held-out generated scenes.

Uses the runtime's own code through ``export.compare``. Skipped until the demo model and calib_data/ exist. The full
figures (100 held-out images, mIoU) are in docs/precision.md with the command that produced them.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from export.compare import compare
from export.fp16 import convert
from export.int8 import quantize

REPO = Path(__file__).resolve().parents[2]
CALIB = REPO / "calib_data"
HELD_OUT_SEED = 11  # not used for training (1), the test set (2), calibration (3) or the video (7)


def _demo_onnx() -> Path | None:
    try:
        from demo.assets import onnx_path
    except ImportError:
        return None
    p = Path(onnx_path())
    return p if p.is_file() else None


pytestmark = [pytest.mark.slow, pytest.mark.skipif(_demo_onnx() is None or not CALIB.is_dir(),
                                reason="the demo model (demo/assets/demo.onnx) or calib_data/ is not there")]


@pytest.fixture(scope="module")
def held_out(tmp_path_factory) -> Path:
    from demo.dataset import write_dataset

    root = tmp_path_factory.mktemp("heldout")
    write_dataset(root, 6, HELD_OUT_SEED, 384, 288, val_fraction=1.0, progress=False)
    return root


@pytest.fixture(scope="module")
def demo_variants(tmp_path_factory) -> tuple[Path, Path, Path]:
    d = tmp_path_factory.mktemp("demo")
    fp32 = _demo_onnx()
    int8, fp16 = d / "demo.int8.onnx", d / "demo.fp16.onnx"
    quantize(fp32, CALIB, int8, progress=False)
    convert(fp32, fp16)
    return fp32, fp16, int8


def test_demo_int8_and_fp16_agree_with_fp32(demo_variants, held_out):
    fp32, fp16, int8 = demo_variants
    stats, _ = compare([str(fp32), str(fp16), str(int8)], held_out, backend="onnxruntime", progress=False)
    ref, half, quant = stats
    assert half.agreement >= 0.995, half.agreement
    assert quant.agreement >= 0.98, quant.agreement
    assert ref.miou() - half.miou() <= 0.01
    assert ref.miou() - quant.miou() <= 0.01
