"""`python -m export compare`: the statistics and tables (pure), and an end-to-end run through runtime.Segmenter."""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from export.compare import ModelStats, compare, format_classes, format_summary
from export.fp16 import convert
from export.voc import write_classes, write_label, write_split

REPO = Path(__file__).resolve().parents[2]


def test_add_pair_accumulates_agreement_and_logit_error():
    s = ModelStats("b.onnx")
    ref_labels = np.array([[0, 1], [1, 1]])
    labels = np.array([[0, 1], [0, 1]])
    ref_logits = np.zeros((2, 1, 2))
    ref_logits[0, 0, 0] = 4.0
    logits = ref_logits.copy()
    logits[1, 0, 1] = 0.5
    s.add_pair(labels, ref_labels, logits, ref_logits)
    s.add_pair(ref_labels, ref_labels, ref_logits, ref_logits)
    assert s.agreement == 7 / 8
    assert s.max_abs_logit_error == 0.5 and s.mean_abs_logit_error == 0.5 / 8
    assert s.rel_logit_error == 0.5 / 4.0
    with pytest.raises(ValueError, match="differs from the reference"):
        s.add_pair(labels, ref_labels, logits[:, :, :1], ref_logits)


def test_tables_and_json():
    names = ["bg", "car"]
    ref = ModelStats("fp32.onnx", backend="onnxruntime", precision="fp32", size_mb=4.0, latencies_ms=[10, 12, 11],
                     confusion=np.array([[90, 10], [0, 100]]))
    ref.add_pair(np.zeros((2, 2)), np.zeros((2, 2)), np.ones((2, 1, 1)), np.ones((2, 1, 1)))
    q = ModelStats("int8.onnx", backend="onnxruntime", precision="int8", size_mb=1.0, latencies_ms=[5, 7],
                   confusion=np.array([[80, 20], [0, 100]]))
    q.add_pair(np.zeros((2, 2)), np.zeros((2, 2)), np.ones((2, 1, 1)) * 1.5, np.ones((2, 1, 1)))
    table = format_summary([ref, q])
    lines = table.splitlines()
    assert "agree %" in lines[0] and "ΔmIoU" in lines[0] and "ms/img" in lines[0]
    assert lines[2].startswith("fp32.onnx") and "100.00" in lines[2] and "11.0" in lines[2]
    assert lines[3].startswith("int8.onnx") and "6.0" in lines[3]
    miou_ref = (90 / 100 + 100 / 110) / 2
    miou_q = (80 / 100 + 100 / 120) / 2
    assert f"{100 * (miou_q - miou_ref):+.2f}" in lines[3]
    classes = format_classes([ref, q], names)
    assert "Δ int8.onnx" in classes.splitlines()[0]
    assert f"{100 * (0.8 - 0.9):+.2f}" in classes.splitlines()[2]
    d = q.to_dict(names, ref)
    assert d["images"] == 2 and d["latency_ms_p50"] == 6.0 and math.isclose(d["iou_delta"]["bg"], -0.1)
    json.dumps(d)  # serializable


def test_tables_without_labels():
    a = ModelStats("a.onnx", latencies_ms=[1.0])
    a.add_pair(np.zeros((1, 1)), np.zeros((1, 1)), np.zeros((1, 1, 1)), np.zeros((1, 1, 1)))
    assert "mIoU" not in format_summary([a, a])
    assert format_classes([a, a], ["x"]) == ""
    assert "miou" not in a.to_dict(["x"], a)


# --------------------------------------------------------------------------------------------------------------------
# End to end through the runtime (needs runtime.Segmenter, export.voc/metrics/evaluate on this branch)


def _voc(root: Path, n: int = 3) -> Path:
    (root / "JPEGImages").mkdir(parents=True)
    (root / "SegmentationClass").mkdir()
    rng = np.random.default_rng(0)
    ids = []
    for i in range(n):
        h, w = 40 + 8 * i, 56
        cv2.imwrite(str(root / "JPEGImages" / f"im{i}.jpg"), rng.integers(0, 255, (h, w, 3), np.uint8))
        write_label(root / "SegmentationClass" / f"im{i}.png", rng.integers(0, 4, (h, w)).astype(np.uint8))
        ids.append(f"im{i}")
    write_split(root, "val", ids)
    write_classes(root, ["background", "road", "car", "person"])
    return root


def test_compare_end_to_end(small_onnx, tmp_path):
    data = _voc(tmp_path / "voc")
    fp16 = tmp_path / "small.fp16.onnx"
    convert(small_onnx, fp16)
    stats, names = compare([str(small_onnx), str(fp16)], data, backend="onnxruntime", progress=False)
    assert names == ["background", "road", "car", "person"]
    ref, half = stats
    assert ref.agreement == 1.0 and ref.max_abs_logit_error == 0.0 and len(ref.latencies_ms) == 3
    assert half.precision == "fp16" and half.agreement > 0.99 and 0 < half.rel_logit_error < 1e-2
    assert ref.confusion is not None and ref.confusion.sum() == sum((40 + 8 * i) * 56 for i in range(3))
    out = tmp_path / "cmp.json"
    r = subprocess.run([sys.executable, "-m", "export", "compare", str(small_onnx), str(fp16), "--data", str(data),
                        "--backend", "onnxruntime", "--json", str(out), "--no-progress"],
                       capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 0, r.stderr
    assert "ΔmIoU" in r.stdout and "Δ small.fp16.onnx" in r.stdout
    report = json.loads(out.read_text())
    assert [m["precision"] for m in report["models"]] == ["fp32", "fp16"]


def test_compare_image_directory_without_labels(small_onnx, tmp_path):
    for i in range(2):
        cv2.imwrite(str(tmp_path / f"{i}.png"), np.full((32, 48, 3), 60 * i, np.uint8))
    stats, _ = compare([str(small_onnx), str(small_onnx)], tmp_path, backend="onnxruntime", progress=False)
    assert stats[1].agreement == 1.0 and stats[1].confusion is None
    with pytest.raises(ValueError, match="at least one model"):
        compare([str(small_onnx)], tmp_path)
