"""What deeplab-infer checks, writes and says, with one stream and with several: output paths checked before the
work (in the user's terms), argument validation, named sources, OpenCV kept quiet, the demo model's warning."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from runtime.infer import main
from runtime.run_outputs import describe_crf

INFER = Path(__file__).resolve().parents[2] / "runtime" / "infer.py"


def _run(argv: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
    """The CLI in its own process: a hang fails the test instead of stopping the suite."""
    return subprocess.run([sys.executable, str(INFER), *argv], capture_output=True, text=True, timeout=timeout)


def _streams(clips: dict[str, Path], several: bool) -> list[str]:
    return ["--source", str(clips["a"])] + (["--source", f"b={clips['b']}"] if several else [])


@pytest.mark.parametrize("several", [False, True], ids=["one-stream", "two-streams"])
@pytest.mark.parametrize("flag", ["--output", "--masks", "--stats"])
def test_read_only_output_is_one_line_before_the_work(tiny_onnx, clips, read_only_dir, several, flag):
    name = {"--output": "out" if several else "out.avi", "--masks": "masks", "--stats": "stats.json"}[flag]
    target = read_only_dir / name
    proc = _run(["--model", str(tiny_onnx), "--no-crf", "--no-progress", *_streams(clips, several),
                 flag, str(target)], timeout=60)
    assert proc.returncode == 1, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error")]
    assert len(errors) == 1 and errors[0].startswith(f"error: cannot write {target}: "), proc.stderr
    assert ".tmp" not in errors[0] and "Errno" not in errors[0] and "Traceback" not in proc.stderr
    assert "processed" not in proc.stdout  # no frame was worked on


@pytest.mark.parametrize("several", [False, True], ids=["one-stream", "two-streams"])
def test_output_where_a_file_is(tmp_path, tiny_onnx, clips, several):
    (tmp_path / "model.pt").write_text("a file")
    target = tmp_path / "model.pt" / "out"
    rc = main(["--model", str(tiny_onnx), "--no-crf", "--no-progress", *_streams(clips, several),
               "--masks", str(target)])
    assert rc == 1


@pytest.mark.parametrize("flag, value, message", [
    ("--max-frames", "-5", "must be ≥ 1, got -5"),
    ("--queue-size", "0", "must be ≥ 1, got 0"),
    ("--max-in-flight", "-1", "must be ≥ 0, got -1"),
    ("--gather-ms", "-5", "must be ≥ 0, got -5"),
    ("--duration", "-1", "must be > 0, got -1"),
    ("--crf-scale", "0", "must be in (0, 1], got 0"),
    ("--crf-scale", "1.5", "must be in (0, 1], got 1.5"),
    ("--crf-iters", "-2", "must be ≥ 0, got -2"),
    ("--batch", "0", "must be ≥ 1, got 0"),
    ("--stall-timeout", "0", "must be > 0, got 0"),
])
def test_bad_numbers_are_usage_errors_naming_the_flag(capsys, flag, value, message):
    with pytest.raises(SystemExit) as exit_info:
        main([flag, value])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == f"deeplab-infer: error: argument {flag}: {message}"


def test_one_named_source(tmp_path, tiny_onnx, clips):
    assert main(["--model", str(tiny_onnx), "--no-crf", "--no-progress", "--source", f"cam2={clips['a']}",
                 "--masks", str(tmp_path / "m"), "--max-frames", "3"]) == 0
    assert len(list((tmp_path / "m").glob("*.png"))) == 3  # the one-stream layout
    assert main(["--model", str(tiny_onnx), "--no-crf", "--no-progress", "--source", f"cam2={clips['a']}",
                 "--masks", str(tmp_path / "d"), "--duration", "60"]) == 0
    assert len(list((tmp_path / "d" / "cam2").glob("*.png"))) == 30  # the several-stream layout, under its name


@pytest.mark.slow
@pytest.mark.parametrize("several", [False, True], ids=["one-stream", "two-streams"])
def test_opencv_warnings_stay_out_of_stderr(tiny_onnx, clips, unused_port, several):
    """A camera index that is not there (OpenCV's V4L2 and FFmpeg warnings) and a network camera that never
    answers (FFmpeg's per-retry lines): only the program's own lines reach stderr."""
    argv = ["--model", str(tiny_onnx), "--no-crf", "--no-progress", "--source", "99"]
    if several:
        argv += ["--source", f"rtsp://127.0.0.1:{unused_port}/x", "--source", str(clips["a"]), "--duration", "4"]
    proc = _run(argv, timeout=90)
    assert proc.returncode == (0 if several else 1), proc.stderr
    assert "[ WARN" not in proc.stderr and "[ERROR" not in proc.stderr and "global " not in proc.stderr, proc.stderr


@pytest.mark.parametrize("several", [False, True], ids=["one-stream", "two-streams"])
def test_the_demo_model_warns_once_on_other_footage(clips, capsys, several):
    assert main(["--no-crf", "--no-progress", "--max-frames", "2", *_streams(clips, several)]) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning: the demo model")]
    assert len(warnings) == 1 and str(clips["a"]) in warnings[0]
    assert main(["--no-crf", "--no-progress", "--max-frames", "2", "--source", "demo"]) == 0
    assert "warning: the demo model" not in capsys.readouterr().err


@pytest.mark.parametrize("settings, text", [
    (None, "off"),
    ({"preset": "pydensecrf"}, "pydensecrf preset"),
    ({"preset": "voc", "iterations": 3, "bilateral_sxy": 40.0}, "voc preset with bilateral_sxy=40, iterations=3"),
])
def test_describe_crf(settings, text):
    assert describe_crf(settings) == text
