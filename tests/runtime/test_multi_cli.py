"""deeplab-infer with several streams: per-stream outputs and figures, one-line errors for bad entries, Ctrl-C."""
from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import pytest

from runtime import Segmenter
from runtime.infer import main

INFER = Path(__file__).resolve().parents[2] / "runtime" / "infer.py"


def test_streams_outputs_and_stats(tmp_path, tiny_onnx, clips):
    stats = tmp_path / "stats.json"
    rc = main(["--model", str(tiny_onnx), "--source", f"cam1={clips['a']}", "--source", str(clips["small"]),
               "--source", f"gone={tmp_path / 'missing.avi'}", "--output", str(tmp_path / "out"),
               "--masks", str(tmp_path / "masks"), "--stats", str(stats), "--no-crf", "--no-progress"])
    assert rc == 0  # a missing source among good ones is that stream's error, not the run's
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["cam1.mp4", "small.mp4"]
    assert len(list((tmp_path / "masks" / "cam1").glob("*.png"))) == 30
    assert len(list((tmp_path / "masks" / "small").glob("*.png"))) == 20
    cap = cv2.VideoCapture(str(tmp_path / "out" / "cam1.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 30 and cap.read()[1].shape == (120, 160, 3)
    data = json.loads(stats.read_text())
    assert data["streams"]["cam1"]["frames"]["processed"] == 30 and data["streams"]["gone"]["state"] == "failed"
    for key in ("fps", "end_to_end", "reconnects", "errors"):
        assert key in data["streams"]["small"]
    assert data["aggregate"]["frames"]["processed"] == 50 and data["aggregate"]["failed_streams"] == ["gone"]


def test_sources_file(tmp_path, tiny_onnx, clips):
    listing = tmp_path / "cams.txt"
    listing.write_text(f"# two cameras\n\nfront={clips['a']}\n  {clips['b']}  \n")
    rc = main(["--model", str(tiny_onnx), "--sources", str(listing), "--masks", str(tmp_path / "m"), "--no-crf",
               "--no-progress"])
    assert rc == 0 and sorted(p.name for p in (tmp_path / "m").iterdir()) == ["b", "front"]


def test_nothing_processed(tmp_path, tiny_onnx, capsys):
    rc = main(["--model", str(tiny_onnx), "--source", str(tmp_path / "x.avi"), "--source", str(tmp_path / "y.avi"),
               "--no-crf", "--no-progress"])
    assert rc == 1 and "error: nothing could be processed" in capsys.readouterr().err


@pytest.mark.parametrize("args, message", [
    (["--source", "", "--source", "demo"], "error: --source: empty source"),
    (["--source", "bad name=demo", "--source", "demo"], "error: --source: bad stream name 'bad name'"),
    (["--source", "cam=", "--source", "demo"], "error: --source: stream 'cam' has no source after '='"),
    (["--source", "a=demo", "--source", "a=demo"], "error: stream name 'a' is given twice"),
    (["--sources", "{tmp}/none.txt"], "error: --sources {tmp}/none.txt: file not found"),
    (["--sources", "{tmp}/comments.txt"], "error: --sources {tmp}/comments.txt: no sources in it"),
    (["--sources", "{tmp}/bad.txt"], "error: {tmp}/bad.txt:3: bad stream name '-x'"),
    (["--source", "demo", "--source", "demo", "--output", "{tmp}/o.mp4"], "error: with several streams --output is a directory"),
    (["--source", "demo", "--serve", "localhost:http"], "error: --serve 'localhost:http': expected [HOST:]PORT"),
    (["--sources", "{tmp}/typo.txt"], "error: {tmp}/typo.txt:2: source not found: demo.mp"),
])
def test_one_line_errors(tmp_path, tiny_onnx, capsys, args, message):
    (tmp_path / "comments.txt").write_text("# nothing\n\n")
    (tmp_path / "bad.txt").write_text("demo\n# fine\n-x=demo\n")
    (tmp_path / "typo.txt").write_text("demo  # the sample\ndemo.mp\n")
    argv = ["--model", str(tiny_onnx), "--no-crf", "--no-progress"] + [a.format(tmp=tmp_path) for a in args]
    assert main(argv) == 1
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error")]
    assert len(err) == 1 and err[0].startswith(message.format(tmp=tmp_path)), err


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("ffprobe") is None, reason="ffprobe (Debian package ffmpeg) is absent")
def test_ctrl_c_leaves_every_output_playable(tmp_path, tiny_onnx, videos, clips, live_video_server):
    server = live_video_server(clips["a"], seconds=1.0)
    out, masks = tmp_path / "out", tmp_path / "masks"
    proc = subprocess.Popen([sys.executable, str(INFER), "--model", str(tiny_onnx), "--no-crf", "--no-progress",
                             "--source", f"file={videos / 'Megamind.avi'}", "--source", f"net={server.url}",
                             "--output", str(out), "--masks", str(masks)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not all(len(list((masks / n).glob("*.png"))) >= 5 for n in ("file", "net")):
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    for name in ("file", "net"):
        probe = subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0", "-show_entries",
                                "stream=nb_read_frames", "-of", "csv=p=0", str(out / f"{name}.mp4")],
                               capture_output=True, text=True, timeout=60)
        assert probe.returncode == 0 and probe.stderr == "", probe.stderr
        assert int(probe.stdout.strip()) >= 5
    assert not list(out.glob(".*")) and not list(out.glob("*.tmp*"))  # no temporary files left behind
    assert "file" in stdout and "net" in stdout  # the per-stream table was printed


def test_the_run_flags_work_with_several_streams(tmp_path, tiny_onnx, clips, capsys):
    stats, masks = tmp_path / "stats.json", tmp_path / "m"
    assert main(["--model", str(tiny_onnx), "--no-crf", "--no-progress", "--source", str(clips["a"]), "--source",
                 str(clips["b"]), "--masks", str(masks), "--stats", str(stats), "--max-frames", "5", "--sequential",
                 "--queue-size", "1", "--max-in-flight", "1"]) == 0
    assert [len(list((masks / n).glob("*.png"))) for n in ("a", "b")] == [5, 5]
    data = json.loads(stats.read_text())
    assert data["mode"] == "sequential" and data["aggregate"]["batch"]["mean"] == 1.0
    assert data["settings"] == {"max_batch": 1, "max_in_flight": 1, "queue_size": 1, "max_frames": 5}
    out = capsys.readouterr()
    assert out.out.count("backend:") == 1 and "CRF: off" in out.out  # the table's line; the reason once on stderr
    assert (out.err + out.out).count(Segmenter(tiny_onnx, crf=None).backend.reason) == 1
    assert out.out.splitlines()[-1] == f"wrote {masks / 'a'}/ (5 mask PNGs), {masks / 'b'}/ (5 mask PNGs), {stats}"


@pytest.mark.slow
def test_ctrl_c_with_two_live_streams(tmp_path, tiny_onnx, clips, live_video_server):
    """Two network cameras and a short file: the file's video is finalised when it ends, while the cameras go on;
    Ctrl-C ends the run at once with exit status 130, says what was kept, and every video plays."""
    cameras = [live_video_server(clips[k], seconds=6.0) for k in ("a", "b")]
    out, masks, stats = tmp_path / "out", tmp_path / "masks", tmp_path / "stats.json"
    proc = subprocess.Popen([sys.executable, str(INFER), "--model", str(tiny_onnx), "--no-crf", "--no-progress",
                             "--source", f"one={cameras[0].url}", "--source", f"two={cameras[1].url}",
                             "--source", f"short={clips['small']}", "--output", str(out), "--masks", str(masks),
                             "--stats", str(stats)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not ((out / "short.mp4").exists() and all(
                len(list((masks / n).glob("*.png"))) >= 3 for n in ("one", "two"))):
            time.sleep(0.2)
        assert proc.poll() is None, proc.communicate()  # the cameras go on...
        assert (out / "short.mp4").exists()  # ...and the file stream's video is already complete
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=5)  # a hang guard: the exit takes well under a second here
    finally:
        proc.kill()
    assert proc.returncode == 130, stderr
    data = json.loads(stats.read_text())
    n = data["aggregate"]["frames"]["processed"]
    last = stderr.splitlines()[-1]
    assert last.startswith(f"interrupted after {n} frames; kept ") and last.endswith(str(stats)), last
    for name in ("one", "two", "short"):
        assert f"{out / name}.mp4 (" in last and f"{masks / name}/ (" in last
        cap = cv2.VideoCapture(str(out / f"{name}.mp4"))
        frames = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        assert frames == data["streams"][name]["frames"]["processed"] and cap.read()[0], name
    assert data["streams"]["short"]["frames"]["processed"] == 20
    assert not list(out.glob(".*"))  # no temporary files left behind
    # the short stream's fps counts its own active time, not the whole run's
    short = data["streams"]["short"]
    assert short["active_s"] < data["aggregate"]["wall_s"]
    assert short["fps"] == pytest.approx(20 / short["active_s"], rel=0.01)
