"""`python -m demo generate|video`: the VOC layout on disk, the same bytes from the same seed, one-line errors."""
import subprocess
import sys

from demo.__main__ import main
from demo.scenes import CLASS_NAMES
from export.voc import VOCDataset, read_classes


def test_generate_writes_the_voc_layout(tmp_path):
    assert main(["generate", "--out", str(tmp_path / "a"), "--count", "5", "--seed", "9", "--size", "64x48",
                 "--val-fraction", "0.4"]) == 0
    root = tmp_path / "a"
    train, val = VOCDataset(root, "train"), VOCDataset(root, "val")
    assert len(train) == 3 and len(val) == 2
    image, labels = val[0]
    assert image.shape == (48, 64, 3) and labels.shape == (48, 64)
    assert read_classes(root / "classes.txt") == list(CLASS_NAMES)
    assert main(["generate", "--out", str(tmp_path / "b"), "--count", "5", "--seed", "9", "--size", "64x48",
                 "--val-fraction", "0.4"]) == 0
    for sub in ("JPEGImages", "SegmentationClass"):
        for f in sorted((root / sub).iterdir()):
            assert f.read_bytes() == (tmp_path / "b" / sub / f.name).read_bytes()


def test_errors_are_one_line(tmp_path):
    r = subprocess.run([sys.executable, "-m", "demo", "video", "--out", str(tmp_path / "x.txt"), "--frames", "2"],
                       capture_output=True, text=True)
    assert r.returncode == 1
    assert r.stderr.startswith("error: ") and r.stderr.count("\n") == 1
