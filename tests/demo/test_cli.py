"""`python -m demo generate|video`: the VOC layout on disk, the same bytes from the same seed, one-line errors; the
help lists every command with its description."""
import subprocess
import sys

import pytest

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


def test_help_lists_every_command_with_a_description(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    flat = " ".join(capsys.readouterr().out.split())
    assert flat.count("`") == 0 and "python -m demo generate|video|train|tune-crf: " in flat
    for command, description in (("generate", "write generated scenes in the PASCAL VOC layout"),
                                 ("train", "train the small DeepLab v2 on a generated VOC-layout dataset; writes --out"),
                                 ("tune-crf", "pick a model's CRF settings on a validation split; write the model")):
        assert f"{command} {description}" in flat
        with pytest.raises(SystemExit):
            main([command, "--help"])
        assert description in " ".join(capsys.readouterr().out.split())


def test_no_progress_bars_into_a_log(tmp_path):
    """Progress bars are for a terminal: with stderr a pipe (a log file, CI), nothing but what the command says."""
    r = subprocess.run([sys.executable, "-m", "demo", "generate", "--out", str(tmp_path / "d"), "--count", "3",
                        "--seed", "1", "--size", "32x24"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stderr == "" and r.stdout == f"wrote 3 images to {tmp_path / 'd'}\n"
