"""The bundled demo model, video and class names. :func:`named_files` is what the word ``demo`` stands for in every
CLI and in ``Segmenter("demo")``: ``pyproject.toml`` declares it as the ``deeplab.named`` entry point ``demo``
(see :mod:`runtime.named`)."""
from __future__ import annotations

from pathlib import Path

ASSETS = Path(__file__).resolve().parent


def checkpoint_path() -> Path:
    """The trained small DeepLab v2 checkpoint ({"model": state_dict, "class_names": [...]})."""
    return ASSETS / "demo.pt"


def onnx_path() -> Path:
    """The demo checkpoint exported to ONNX (with its metadata, CRF preset included)."""
    return ASSETS / "demo.onnx"


def video_path() -> Path:
    """The sample video behind ``--source demo``."""
    return ASSETS / "demo.mp4"


def classes_path() -> Path:
    """The demo model's class names, one per line."""
    return ASSETS / "classes.txt"


def named_files() -> dict[str, Path]:
    """The files the name ``demo`` stands for, by kind (:data:`runtime.named.KINDS`)."""
    return {"model": onnx_path(), "checkpoint": checkpoint_path(), "video": video_path()}


def check_not_assets(paths: list[str | Path], update_demo: bool) -> None:
    """Refuse to write any of ``paths`` inside the bundled assets unless ``update_demo``: every ``demo`` run and test
    uses them, and a non-editable install keeps them in site-packages."""
    if update_demo:
        return
    for path in paths:
        if Path(path).resolve().is_relative_to(ASSETS):
            raise ValueError(f"refusing to overwrite the bundled demo asset {path}: choose another output path, "
                             "or pass --update-demo to replace the bundled demo")
