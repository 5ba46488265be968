"""`python -m export eval` on a tiny generated set, through the runtime (real onnxruntime) and the real CRF."""
import json
import subprocess
import sys

import numpy as np
import pytest

from export.evaluate import Evaluation, format_table

torch = pytest.importorskip("torch")

from demo.dataset import write_dataset  # noqa: E402
from demo.scenes import CLASS_NAMES  # noqa: E402
from export.checkpoint import save_checkpoint  # noqa: E402
from export.model import DeepLabV2  # noqa: E402
from export.onnx_export import export_onnx  # noqa: E402


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A 3-image generated VOC set and a small untrained checkpoint + ONNX with the demo's classes."""
    root = tmp_path_factory.mktemp("eval")
    write_dataset(root / "data", 3, seed=5, width=72, height=56, val_fraction=1.0, progress=False)
    torch.manual_seed(0)
    model = DeepLabV2(len(CLASS_NAMES), blocks=(1, 1, 1, 1), base_width=4).eval()
    save_checkpoint(root / "m.pt", model, list(CLASS_NAMES))
    export_onnx(root / "m.pt", root / "m.onnx", height=56, width=72)
    return root


def _eval(*args):
    return subprocess.run([sys.executable, "-m", "export", "eval", *map(str, args)], capture_output=True, text=True)


def test_eval_onnx_with_and_without_crf(tiny):
    out = tiny / "r.json"
    r = _eval(tiny / "m.onnx", "--data", tiny / "data", "--json", out)
    assert r.returncode == 0, r.stderr
    assert "mIoU" in r.stdout and "CRF" in r.stdout
    report = json.loads(out.read_text())
    assert report["images"] == 3
    for key in ("miou", "miou_crf", "pixel_acc", "pixel_acc_crf"):
        assert 0.0 <= report[key] <= 1.0
    assert set(report["iou"]) == set(report["iou_crf"]) and "background" in report["iou"]
    cm = np.array(report["confusion"])
    assert cm.sum() == np.array(report["confusion_crf"]).sum() > 0


@pytest.mark.slow
def test_eval_checkpoint_matches_its_onnx(tiny):
    r1 = _eval(tiny / "m.pt", "--data", tiny / "data", "--no-crf", "--json", tiny / "a.json")
    r2 = _eval(tiny / "m.onnx", "--data", tiny / "data", "--no-crf", "--json", tiny / "b.json")
    assert r1.returncode == 0 and r2.returncode == 0, r1.stderr + r2.stderr
    a, b = json.loads((tiny / "a.json").read_text()), json.loads((tiny / "b.json").read_text())
    assert "miou_crf" not in a
    assert a["confusion"] == b["confusion"]


def test_eval_errors_are_one_line(tiny):
    r = _eval(tiny / "missing.onnx", "--data", tiny / "data")
    assert r.returncode == 1 and r.stderr.startswith("error: ") and r.stderr.count("\n") == 1
    r = _eval(tiny / "m.onnx", "--data", tiny / "nodata")
    assert r.returncode == 1 and "dataset directory not found" in r.stderr


def test_table_formats_absent_classes():
    m = np.array([[3, 0], [0, 0]], np.int64)
    text = format_table(Evaluation(["bg", "thing"], 1, m, None))
    assert "100.00" in text and "-" in text.splitlines()[2]
