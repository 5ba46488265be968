"""runtime.infer end to end: outputs, the stats file, exit codes and one-line errors."""
from __future__ import annotations

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

import crf
from demo import assets
from runtime import Segmenter
from runtime.infer import main


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
    assert data["frames"] == {"processed": 3, "skipped": 0, "failed": 0, "dropped": 0}
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


def test_crf_scale(tmp_path, tiny_onnx, videos, capsys):
    """--crf-scale runs the video's CRF at that resolution (instead of the video default); out of (0, 1]: a usage
    error naming the flag."""
    stats = tmp_path / "s.json"
    assert main(["--model", str(tiny_onnx), "--source", str(videos / "tree.avi"), "--max-frames", "2",
                 "--crf-scale", "0.5", "--no-progress", "--stats", str(stats), "--masks", str(tmp_path / "m")]) == 0
    assert json.loads(stats.read_text())["crf"]["scale"] == 0.5
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main(["--model", str(tiny_onnx), "--source", str(videos / "tree.avi"), "--crf-scale", "2",
              "--no-progress", "--masks", str(tmp_path / "m2")])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "argument --crf-scale: must be in (0, 1], got 2" in err
    assert "Traceback" not in err


@pytest.mark.skipif(crf.gpu.cuda_available(), reason="the GPU CRF runs here: nothing falls back")
def test_crf_device_cuda_falls_back_in_one_line(tmp_path, tiny_onnx, capsys):
    """--crf-device cuda where the GPU CRF cannot run: one line saying so, then the CRF runs on the CPU."""
    src = _images(tmp_path / "in", n=1)
    assert main(["--model", str(tiny_onnx), "--source", str(src), "--crf-device", "cuda", "--crf-iters", "1",
                 "--masks", str(tmp_path / "m"), "--no-progress"]) == 0
    lines = [line for line in capsys.readouterr().err.splitlines() if "CRF" in line]
    assert len(lines) == 1 and "falls back to the CPU" in lines[0]
    assert (tmp_path / "m" / "img0.png").exists()


@pytest.mark.parametrize("args, message", [
    (["--source", "{tmp}/missing.avi"], "error: source not found"),
    (["--model", "{tmp}/missing.onnx"], "error: model file not found"),
    (["--source", "demo", "--output", "{tmp}/out_dir"], "error: --output for a video source must be a video file"),
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


@pytest.mark.slow
@pytest.mark.parametrize("name, codec", [("out.avi", "MJPEG"), ("out.mp4", "H.264")])
def test_ctrl_c_finalizes_the_video(tmp_path, tiny_onnx, videos, name, codec):
    import signal
    import time
    if codec == "H.264":
        pytest.importorskip("av")
    out, masks, stats = tmp_path / name, tmp_path / "masks", tmp_path / "stats.json"
    proc = subprocess.Popen([sys.executable, "-m", "runtime.infer", "--model", str(tiny_onnx), "--source",
                             str(videos / "slow_traffic_small.mp4"), "--no-crf", "--output", str(out), "--masks",
                             str(masks), "--stats", str(stats), "--no-progress", "--queue-size", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline and len(list(masks.glob("*.png"))) < 10:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    data = json.loads(stats.read_text())
    n = data["frames"]["processed"]
    assert data["interrupted"] and 10 <= n < 914
    assert stderr.splitlines()[-1] == (f"interrupted after {n} frames; kept {out} ({n} frames, {codec}), {masks}/ "
                                       f"({n} mask PNGs), {stats}")
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


def test_what_was_written_is_said_at_the_end(tmp_path, tiny_onnx, capsys):
    src = _images(tmp_path / "in")
    out, masks = tmp_path / "out", tmp_path / "masks"
    assert main(["--model", str(tiny_onnx), "--source", str(src), "--output", str(out), "--masks", str(masks),
                 "--no-crf", "--no-progress"]) == 0
    captured = capsys.readouterr()
    assert captured.out.splitlines()[-1] == f"wrote {out}/ (3 overlay JPEGs), {masks}/ (3 mask PNGs)"
    assert "nothing is written" not in captured.err


@pytest.mark.parametrize("stats, kept", [(False, "only the table below"), (True, "only the table and {stats}")])
def test_no_outputs_is_said_at_the_start(tmp_path, tiny_onnx, capsys, stats, kept):
    argv = ["--model", str(tiny_onnx), "--source", str(_images(tmp_path / "in")), "--no-crf", "--no-progress"]
    if stats:
        argv += ["--stats", str(tmp_path / "s.json")]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert (f"note: no --output or --masks: every frame is processed and nothing is written "
            f"({kept.format(stats=tmp_path / 's.json')}); fine for timing a model, else add --output out.mp4 and/or "
            "--masks DIR") in captured.err.splitlines()
    assert "wrote" not in captured.out if not stats else captured.out.splitlines()[-1] == f"wrote {tmp_path / 's.json'}"


def test_the_backend_line_is_printed_once(tmp_path, tiny_onnx, capsys):
    assert main(["--model", str(tiny_onnx), "--source", str(_images(tmp_path / "in", 1)), "--no-crf",
                 "--no-progress"]) == 0
    captured = capsys.readouterr()
    text = captured.out + captured.err
    reason = text.split("backend: onnxruntime (", 1)[1].split(")\n", 1)[0]
    assert len(reason) > 20 and text.count(reason) == 1
    assert "backend: onnxruntime; CRF: off" in captured.out


def test_an_image_sequence_can_become_a_video(tmp_path, tiny_onnx, caplog):
    pytest.importorskip("av")
    out = tmp_path / "seq.mp4"
    assert main(["--model", str(tiny_onnx), "--source", str(_images(tmp_path / "in")), "--output", str(out),
                 "--no-crf", "--no-progress"]) == 0
    cap = cv2.VideoCapture(str(out))
    # the first image's size, 41x30, with the column H.264 (yuv420p) needs for an even width
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 3 and cap.read()[1].shape == (30, 42, 3)
    assert "2 frame(s) of another size were resized to 41x30" in caplog.text


def test_output_under_a_file_is_one_clear_line(tmp_path, tiny_onnx, capsys):
    (tmp_path / "rofile").write_text("a file")
    for flag, path in (("--output", "rofile/x.avi"), ("--masks", "rofile/masks"), ("--stats", "rofile/s.json")):
        assert main(["--model", str(tiny_onnx), "--source", str(_images(tmp_path / f"in{flag}", 1)),
                     flag, str(tmp_path / path), "--no-crf", "--no-progress"]) == 1
        err = capsys.readouterr().err
        assert err.splitlines()[-1] == (f"error: cannot write {tmp_path / path}: {tmp_path / 'rofile'} is a file, "
                                        "not a directory")


def test_help_text(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    flat = " ".join(text.split())
    assert "(default: None)" not in flat and "``" not in text and flat.count("default 127.0.0.1:8000") == 1
    assert "{" + ",".join(("default", *crf.PRESETS)) + "}" in text
    assert ("the bundled demo model, which knows only the generated demo shapes and gives meaningless labels on real "
            "footage; for your own video, export your checkpoint: python -m export onnx CHECKPOINT -o model.onnx") in flat
    assert flat.startswith("usage: deeplab-infer") and "deeplab-infer (python runtime/infer.py" in flat


def test_an_unknown_crf_preset_lists_the_presets(capsys):
    with pytest.raises(SystemExit):
        main(["--crf-preset", "nope"])
    err = capsys.readouterr().err.replace("'", "")
    assert f"invalid choice: nope (choose from {', '.join(('default', *crf.PRESETS))})" in err


@pytest.mark.slow
def test_the_source_kind_decides_the_video_crf(tmp_path, tiny_onnx, videos):
    """A video source (one stream, or any of several) gets the video CRF, images the full one: decided from what each
    source is (runtime.sources.source_kind), before the model is built."""
    images, video = _images(tmp_path / "in", 2), str(videos / "tree.avi")
    video_crf = {"iterations": crf.VIDEO_ITERATIONS, "scale": pytest.approx(crf.VIDEO_SCALE)}
    for n, sources in enumerate(([video], [str(images)], [str(images), video], [str(images), str(images / "*.png")])):
        stats = tmp_path / f"s{n}.json"
        extra = ["--duration", "30"] if len(sources) > 1 else ["--max-frames", "2"]
        args = ["--model", str(tiny_onnx), "--no-progress", "--stats", str(stats), *extra]
        assert main(args + [a for s in sources for a in ("--source", s)]) == 0
        used = json.loads(stats.read_text())["crf"]
        is_video = video in sources
        assert ({k: used.get(k) for k in video_crf} == video_crf) is is_video, (sources, used)
