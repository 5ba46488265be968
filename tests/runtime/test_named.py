"""Named files: ``demo`` resolves through the ``deeplab.named`` entry point, and runtime/export never import demo."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

import demo.assets
from runtime import named
from runtime.backends import resolve_model
from runtime.sources import SourceError, open_source

REPO = Path(__file__).resolve().parents[2]


def test_demo_is_a_declared_name():
    assert named.is_name("demo") and not named.is_name("model.onnx")
    assert named.resolve("demo", "model") == demo.assets.onnx_path()
    assert named.resolve("demo", "checkpoint") == demo.assets.checkpoint_path()
    assert named.resolve("demo", "video") == demo.assets.video_path()
    assert resolve_model("demo") == demo.assets.onnx_path()


def test_other_specs_pass_through():
    assert named.resolve("model.onnx", "model") == "model.onnx"
    assert named.resolve("rtsp://host/stream", "video") == "rtsp://host/stream"
    assert resolve_model("dir/model.plan") == Path("dir/model.plan")
    with pytest.raises(ValueError, match="unknown kind 'weights'"):
        named.resolve("demo", "weights")


def test_a_missing_named_file_is_one_line_in_the_callers_error(monkeypatch, tmp_path):
    monkeypatch.setattr(demo.assets, "video_path", lambda: tmp_path / "absent.mp4")
    with pytest.raises(SourceError, match=r"^the bundled demo video is missing \(.*absent.mp4\)$"):
        open_source("demo")


def _imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("package", ["runtime", "export", "crf"])
def test_no_module_imports_demo(package):
    offenders = sorted(str(p.relative_to(REPO)) for p in (REPO / package).rglob("*.py")
                       if any(n == "demo" or n.startswith("demo.") for n in _imports_of(p)))
    assert offenders == []


_WITHOUT_DEMO = """
import runtime, crf
import runtime.infer, runtime.pipeline, runtime.segmenter, runtime.sources, runtime.backends.ort
import export.cli, export.onnx_export, export.evaluate, export.triton
from runtime.backends import BackendError, resolve_model
from runtime.sources import SourceError, open_source
for call, error in ((lambda: resolve_model("demo"), BackendError), (lambda: open_source("demo"), SourceError)):
    try:
        call()
    except error as e:
        print(e)
"""


def test_runtime_and_crf_import_without_demo(run_without):
    done = run_without("demo", ["-c", _WITHOUT_DEMO], REPO, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 2 and all(line.startswith("the bundled demo") and "not available" in line for line in lines)
    assert lines[0].startswith("the bundled demo model") and lines[1].startswith("the bundled demo video")
