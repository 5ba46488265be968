"""Paths of the bundled demo assets (the demo helper fills the files)."""
from __future__ import annotations

from pathlib import Path

_HERE = Path(__file__).parent


def checkpoint_path() -> Path:
    return _HERE / "demo.pt"


def onnx_path() -> Path:
    return _HERE / "demo.onnx"


def video_path() -> Path:
    return _HERE / "demo.mp4"


def classes_path() -> Path:
    return _HERE / "classes.txt"
