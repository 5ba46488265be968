"""runtime.infer end to end: outputs, the stats file, exit codes and one-line errors."""
from __future__ import annotations

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

from demo import assets
from runtime import Segmenter
from runtime.infer import describe_crf, main


def _images(directory, n=3):
    directory.mkdir()
    for i in range(n):
        cv2.imwrite(str(directory / f"img{i}.png"), np.full((30 + i, 41, 3), 60 * i, np.uint8))
    return directory


def test_image_directory(tmp_path, tiny_onnx, capsys):
    src = _images(tmp_path / "in")
    stats = tmp_path / "stats.json"
    rc = main(["--model", str(tiny_onnx), "--source", str(src), "--output", str(tmp_path / "out"), "--masks",
               str(tmp_path / "masks"), "--no-crf", "--stats", str(stats), "--no-progress"])
    assert rc == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["img0.jpg", "img1.jpg", "img2.jpg"]
    assert sorted(p.name for p in (tmp_path / "masks").iterdir()) == ["img0.png", "img1.png", "img2.png"]
    data = json.loads(stats.read_text())
    assert data["frames"] == {"processed": 3, "skipped": 0, "failed": 0}
    for key in ("p50_ms", "p90_ms", "p99_ms"):
        assert key in data["end_to_end"] and key in data["stages"]["infer"]
    assert data["fps"] > 0 and data["backend"] == "onnxruntime" and data["crf"] is None
    out = capsys.readouterr().out
    assert "end-to-end" in out and "3 processed" in out


def test_video_to_video(tmp_path, tiny_onnx, videos):
    out = tmp_path / "overlay.mp4"
    rc = main(["--model", str(tiny_onnx), "--source", str(videos / "tree.avi"), "--output", str(out), "--no-crf",
               "--max-frames", "20", "--no-progress", "--stats", str(tmp_path / "s.json")])
    assert rc == 0
    cap = cv2.VideoCapture(str(out))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 20 and cap.read()[1].shape == (240, 320, 3)


@pytest.mark.parametrize("args, message", [
    (["--source", "{tmp}/missing.avi"], "error: source not found"),
    (["--model", "{tmp}/missing.onnx"], "error: model file not found"),
    (["--source", "{tmp}/bad", "--output", "{tmp}/x.mp4"], "for an image source is a directory"),
    (["--source", "{tmp}/empty.avi"], "error: source file is empty"),
])
def test_one_line_errors(tmp_path, tiny_onnx, capsys, args, message):
    (tmp_path / "bad").mkdir()
    cv2.imwrite(str(tmp_path / "bad" / "a.png"), np.zeros((8, 8, 3), np.uint8))
    (tmp_path / "empty.avi").write_bytes(b"")
    argv = ["--model", str(tiny_onnx), "--no-crf", "--no-progress"] + [a.format(tmp=tmp_path) for a in args]
    if "--source" not in args:  # a repeated --source would add a second stream
        argv += ["--source", str(tmp_path / "bad")]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert len([line for line in err.splitlines() if line.startswith("error")]) == 1


def test_nothing_processed_is_non_zero(tmp_path, tiny_onnx, capsys):
    src = tmp_path / "junk"
    src.mkdir()
    (src / "a.png").write_bytes(b"not a png")
    assert main(["--model", str(tiny_onnx), "--source", str(src), "--no-crf", "--no-progress"]) == 1
    assert "nothing could be processed: cannot decode image" in capsys.readouterr().err


def test_some_frames_bad_is_zero(tmp_path, tiny_onnx):
    src = _images(tmp_path / "in", 2)
    (src / "z.png").write_bytes(b"")
    assert main(["--model", str(tiny_onnx), "--source", str(src), "--no-crf", "--no-progress"]) == 0


def test_model_metadata_errors(tmp_path, make_onnx, capsys):
    src = _images(tmp_path / "in", 1)
    for meta, message in ((None, "has no 'deeplab' metadata"), ("{oops", "corrupt 'deeplab' metadata")):
        model = make_onnx(tmp_path / "m.onnx", metadata=meta)
        assert main(["--model", str(model), "--source", str(src), "--no-crf"]) == 1
        assert message in capsys.readouterr().err


def test_verbose_shows_the_traceback(tmp_path, tiny_onnx):
    with pytest.raises(Exception, match="source not found"):
        main(["--model", str(tiny_onnx), "--source", str(tmp_path / "nope.avi"), "--no-crf", "--verbose"])


def test_module_entry_point(tmp_path, tiny_onnx):
    src = _images(tmp_path / "in", 1)
    proc = subprocess.run([sys.executable, "-m", "runtime.infer", "--model", str(tiny_onnx), "--source", str(src),
                           "--no-crf", "--no-progress"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "1 processed" in proc.stdout


def test_ctrl_c_finalizes_the_video(tmp_path, tiny_onnx, videos):
    import signal
    import time
    out, masks, stats = tmp_path / "out.avi", tmp_path / "masks", tmp_path / "stats.json"
    proc = subprocess.Popen([sys.executable, "-m", "runtime.infer", "--model", str(tiny_onnx), "--source",
                             str(videos / "slow_traffic_small.mp4"), "--no-crf", "--output", str(out), "--masks",
                             str(masks), "--stats", str(stats), "--no-progress", "--queue-size", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline and len(list(masks.glob("*.png"))) < 10:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    data = json.loads(stats.read_text())
    assert data["interrupted"] and 10 <= data["frames"]["processed"] < 914
    cap = cv2.VideoCapture(str(out))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == data["frames"]["processed"] and cap.read()[0]
    assert len(list(masks.glob("*.png"))) == data["frames"]["processed"] and not list(tmp_path.glob(".out*"))


def test_demo_defaults(capsys):
    """`--source demo` / `--model demo` name the bundled assets; a checkout without them says so in one line."""
    if assets.onnx_path().is_file() and assets.video_path().is_file():
        assert main(["--max-frames", "3", "--no-progress"]) == 0
        out = capsys.readouterr().out
        assert "3 processed" in out
        assert "CRF: voc preset with bilateral_srgb=10, bilateral_sxy=40, bilateral_weight=12" in out  # its own
    else:
        assert main(["--max-frames", "3", "--no-progress"]) == 1
        assert "bundled demo" in capsys.readouterr().err


@pytest.mark.parametrize("settings, text", [
    (None, "off"),
    ({"preset": "pydensecrf"}, "pydensecrf preset"),
    ({"preset": "voc", "iterations": 3, "bilateral_sxy": 40.0}, "voc preset with bilateral_sxy=40, iterations=3"),
])
def test_describe_crf(settings, text):
    assert describe_crf(settings) == text


def test_a_bug_stops_the_run_with_one_line_or_a_traceback(tmp_path, tiny_onnx, capsys, monkeypatch):
    def broken(self, logits, padding):
        raise ValueError("operands could not be broadcast together")

    monkeypatch.setattr(Segmenter, "labels", broken)
    args = ["--model", str(tiny_onnx), "--source", str(_images(tmp_path / "in", 4)), "--no-crf", "--no-progress"]
    assert main(args) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[-1] == "error: operands could not be broadcast together" and "Traceback" not in "\n".join(err)
    with pytest.raises(ValueError, match="operands could not be broadcast"):
        main(args + ["--verbose"])
