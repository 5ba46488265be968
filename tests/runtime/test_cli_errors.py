"""Every CLI prints the whole of an error message: an engine that does not fit the machine keeps its rebuild command
(the second line); a missing optional module says which extra installs it."""
import importlib.util
from pathlib import Path

import pytest

import demo.train
import export.fp16
import runtime.infer
from demo.__main__ import main as demo_main
from export.cli import main as export_main
from runtime.cli_errors import error_text, missing_extra
from runtime.engine_info import Compatibility, EngineInfoError

REPO = Path(__file__).resolve().parents[2]
MISMATCH = Compatibility(("built by TensorRT 10.3.0, this is 8.6.1",), (),
                         "python -m export engine m.onnx -o m.plan --precision fp16").message("m.plan")


def _dump_logits():
    spec = importlib.util.spec_from_file_location("dump_logits", REPO / "examples" / "cpp" / "dump_logits.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _refuse(*args, **kwargs):
    raise EngineInfoError(MISMATCH)


def test_the_mismatch_message_has_two_lines():
    assert MISMATCH.count("\n") == 1 and MISMATCH.splitlines()[1].strip().startswith("python -m export engine")


def test_infer(monkeypatch, capsys):
    monkeypatch.setattr(runtime.infer, "Segmenter", _refuse)
    assert runtime.infer.main(["--model", "m.plan", "--no-progress"]) == 1
    assert capsys.readouterr().err == f"error: {MISMATCH}\n"


def test_dump_logits(monkeypatch, capsys, tmp_path):
    module = _dump_logits()
    monkeypatch.setattr(module, "Segmenter", _refuse)
    assert module.main(["--model", "m.plan", "--out", str(tmp_path / "logits")]) == 1
    assert capsys.readouterr().err == f"error: {MISMATCH}\n"
    assert not (tmp_path / "logits").exists()


def test_export(monkeypatch, capsys):
    monkeypatch.setattr(export.fp16, "run", _refuse)
    assert export_main(["fp16", "demo"]) == 1
    assert capsys.readouterr().err == f"error: {MISMATCH}\n"


def test_demo(monkeypatch, capsys):
    monkeypatch.setattr(demo.train, "run", _refuse)
    assert demo_main(["train", "--data", "data", "--out", "m.pt"]) == 1
    assert capsys.readouterr().err == f"error: {MISMATCH}\n"


def test_dump_logits_help(capsys):
    with pytest.raises(SystemExit):
        _dump_logits().main(["--help"])
    flat = " ".join(capsys.readouterr().out.split())
    assert "--backend {auto,onnxruntime,tensorrt,triton} inference backend, as in runtime/infer.py" in flat
    assert "--max-frames N stop after N frames (default: the whole source)" in flat


@pytest.mark.parametrize("error, text", [
    (ModuleNotFoundError("No module named 'torch'", name="torch"), "No module named 'torch': it comes with the "
                                                                    "'export' extra: pip install -e \".[export]\""),
    (ModuleNotFoundError("No module named 'onnx.helper'", name="onnx.helper"), "No module named 'onnx': it comes"),
    (ModuleNotFoundError("No module named 'yaml'", name="yaml"), None),
    (ValueError("bad"), None),
])
def test_missing_extra(error, text):
    hint = missing_extra(error)
    assert hint is None if text is None else hint.startswith(text)


def test_error_text_is_every_line_or_the_type():
    assert error_text(ValueError("one\ntwo\n")) == "one\ntwo"
    assert error_text(KeyError()) == "KeyError"
