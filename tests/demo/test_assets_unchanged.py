"""The documented commands, on tiny settings, leave the shipped files alone: demo/assets and calib_data hash the same
before and after, and writing into demo/assets needs --update-demo."""
import hashlib
from pathlib import Path

import pytest

from demo.__main__ import main as demo_main
from demo.assets import ASSETS
from export.cli import main as export_main
from runtime.infer import main as infer_main

torch = pytest.importorskip("torch")

REPO = Path(__file__).resolve().parents[2]
SHIPPED = (ASSETS, REPO / "calib_data")


def shipped_hashes() -> dict[str, str]:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest()
            for root in SHIPPED for p in sorted(root.rglob("*")) if p.is_file() and "__pycache__" not in p.parts}


@pytest.mark.slow
def test_documented_commands_leave_shipped_files_unchanged(tmp_path, monkeypatch):
    before = shipped_hashes()
    assert any(name.endswith("demo.pt") for name in before) and any(name.endswith(".jpg") for name in before)
    monkeypatch.chdir(tmp_path)
    assert demo_main(["generate", "--out", "data", "--count", "4", "--seed", "2", "--size", "64x48",
                      "--val-fraction", "0.5"]) == 0
    assert demo_main(["video", "--out", "clip.mp4", "--frames", "3", "--size", "64x48"]) == 0
    assert demo_main(["train", "--data", "data", "--out", "model.pt", "--steps", "1", "--batch", "1", "--crop", "32",
                      "--width", "4", "--threads", "1"]) == 0
    assert Path("model.pt").is_file() and Path("model.onnx").is_file()
    assert demo_main(["tune-crf", "--data", "data", "--max-images", "1", "--out", "tuned.pt", "--sxy", "40",
                      "--srgb", "10", "--weight", "12"]) == 0
    assert Path("tuned.pt").is_file() and Path("tuned.onnx").is_file()
    assert export_main(["onnx", "demo", "--height", "48", "--width", "64"]) == 0
    assert export_main(["fp16", "demo"]) == 0
    assert export_main(["int8", "demo", "--calib", str(REPO / "calib_data"), "--max-images", "2"]) == 0
    assert export_main(["eval", "demo", "--data", "data", "--json", "eval.json", "--max-images", "1"]) == 0
    assert export_main(["compare", "demo", "demo.fp16.onnx", "--data", "data", "--max-images", "1"]) == 0
    assert export_main(["triton", "demo", "-o", "repo"]) == 0
    assert infer_main(["--source", "demo", "--output", "out.mp4", "--masks", "masks", "--stats", "stats.json",
                       "--max-frames", "2", "--no-progress"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["data", "clip.mp4", "model.pt", "model.onnx", "tuned.pt", "tuned.onnx", "demo.onnx", "demo.fp16.onnx",
         "demo.int8.onnx", "eval.json", "repo", "out.mp4", "masks", "stats.json"])
    assert shipped_hashes() == before


@pytest.mark.parametrize("argv", [
    ["train", "--data", "unused", "--out", str(ASSETS / "demo.pt")],
    ["train", "--data", "unused", "--out", "elsewhere.pt", "--onnx", str(ASSETS / "demo.onnx")],
    ["tune-crf", "--data", "unused", "--out", str(ASSETS / "demo.pt")],
    ["video", "--out", str(ASSETS / "demo.mp4"), "--frames", "1"],
])
def test_writing_into_the_assets_needs_update_demo(argv, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    before = shipped_hashes()
    assert demo_main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: refusing to overwrite the bundled demo asset ") and err.count("\n") == 1
    assert "--update-demo" in err
    assert shipped_hashes() == before and not (tmp_path / "elsewhere.pt").exists()


def test_train_and_tune_crf_require_out(capsys):
    for command in ("train", "tune-crf"):
        with pytest.raises(SystemExit):
            demo_main([command, "--data", "unused"])
        assert "the following arguments are required: --out" in capsys.readouterr().err
