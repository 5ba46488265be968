"""`python -m export`: what a new user sees: which extra a missing module comes with, the help text, one-line errors
that name the file (every line of a multi-line error: tests/runtime/test_cli_errors.py)."""
import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from export.cli import build_parser, main

REPO = Path(__file__).resolve().parents[2]

EXPORT_HINT = ('it comes with the \'export\' extra: pip install -e ".[export]" in a checkout, or pip install '
               '"deeplab-deploy[export]" (on a CPU machine first pip install torch==2.13.0, so pip does not pull a '
               'CUDA build)')


@pytest.mark.parametrize("args, module", [
    (["-m", "export", "onnx", "demo"], "torch"),
    (["-m", "export", "fp16", "demo"], "onnx"),
    (["-m", "export", "int8", "demo", "--calib", str(REPO / "calib_data")], "onnx"),
    (["-m", "export", "triton", "demo", "-o", "repo"], "onnx"),
    (["-m", "demo", "train", "--data", "data", "--out", "m.pt"], "torch"),
])
def test_a_missing_extra_says_how_to_install_it(args, module, tmp_path, run_without):
    if args[1] == "demo":
        proc = run_without("torch,onnx,onnxscript", ["-m", "demo", "generate", "--out", "data", "--count", "2",
                                                     "--seed", "0", "--size", "32x32"], tmp_path)
        assert proc.returncode == 0, proc.stderr
    proc = run_without("torch,onnx,onnxscript", args, tmp_path)
    assert proc.returncode == 1
    assert proc.stderr == f"error: No module named '{module}': {EXPORT_HINT}\n"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "data") == []


def test_the_blocker_hides_what_it_is_told_to(tmp_path, run_without):
    proc = run_without("onnx", ["-c", "import numpy, onnxruntime; import onnx"], tmp_path)
    assert "ModuleNotFoundError: No module named 'onnx'" in proc.stderr


def test_help_says_which_commands_need_which_extra(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "`" not in out
    assert ('onnx, fp16, int8 and triton need the export extra (torch, onnx): pip install -e ".[export]"' in out)
    assert "eval and compare need it only for a checkpoint (.pt/.pth/.caffemodel; no Caffe needed)" in out
    assert "engine needs TensorRT (the gpu extra) and onnx" in out


@pytest.mark.parametrize("command", [["fp16"], ["int8", "--calib", str(REPO / "calib_data")], ["triton", "-o", "repo"]])
def test_an_invalid_onnx_file_is_named(command, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    Path("garbage.onnx").write_bytes(b"\x08\x07garbage that is no protobuf \xff\xfe" * 10)
    Path("empty.onnx").write_bytes(b"")
    for name in ("garbage.onnx", "empty.onnx"):
        assert main([command[0], name, *command[1:]]) == 1
        assert capsys.readouterr().err == f"error: {name} is not a valid ONNX model\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.onnx", "garbage.onnx"]


def test_output_under_a_file_says_the_parent_is_not_a_directory(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    Path("rofile").write_text("a file")
    assert main(["fp16", "demo", "-o", "rofile/x.onnx"]) == 1
    assert capsys.readouterr().err == "error: cannot write rofile/x.onnx: rofile is a file, not a directory\n"



def _options(parser: argparse.ArgumentParser):
    return [a for a in parser._actions if a.option_strings and a.dest not in ("help", "verbose")]


@pytest.mark.parametrize("command", ["eval", "compare", "triton"])
def test_every_option_is_explained(command):
    """Each option has help text; one with a default value says it; one with a fixed set of values lists it."""
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)).choices[command]
    for action in _options(sub):
        assert action.help and action.help != argparse.SUPPRESS, action.dest
        if action.default not in (None, False, argparse.SUPPRESS) and not isinstance(action.default, bool):
            assert "default" in action.help, action.dest
    assert any(a.choices for a in _options(sub) if a.dest == "backend" or a.dest == "crf_preset")


def test_the_installed_command_says_what_it_is():
    proc = subprocess.run([sys.executable, "-c", "import sys; sys.argv[0] = 'deeplab-export'; "
                           "from export.cli import main; main(['--help'])"], capture_output=True, text=True, timeout=60)
    assert proc.stdout.startswith("usage: deeplab-export ")
    assert "deeplab-export (python -m export): a DeepLab v2 checkpoint to ONNX" in " ".join(proc.stdout.split())
