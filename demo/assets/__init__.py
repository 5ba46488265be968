"""The bundled demo model, video and class names (what the word ``demo`` names in every CLI)."""
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


def check_not_assets(paths: list[str | Path], update_demo: bool) -> None:
    """Refuse to write any of ``paths`` inside the bundled assets unless ``update_demo``: every ``demo`` run and test
    uses them, and a non-editable install keeps them in site-packages."""
    if update_demo:
        return
    for path in paths:
        if Path(path).resolve().is_relative_to(ASSETS):
            raise ValueError(f"refusing to overwrite the bundled demo asset {path}: choose another output path, "
                             "or pass --update-demo to replace the bundled demo")
