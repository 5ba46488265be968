"""``../shared`` beside the repository: the reference data and NVIDIA's TensorRT API sources that tests read.

Where it is absent (a developer's checkout without it) the tests that need it skip; with ``CI`` set they fail, since
CI always lays it beside the checkout. ``DEEPLAB_SHARED`` points elsewhere (e.g. from a git worktree)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED = Path(os.environ.get("DEEPLAB_SHARED") or Path(__file__).resolve().parents[2].parent / "shared")
REFERENCE = SHARED / "reference"
TENSORRT_API = SHARED / "tensorrt-api"
# What CI's copy holds; tests/conftest.py refuses to start a CI run without them.
REQUIRED = (REFERENCE / "images", REFERENCE / "videos", REFERENCE / "crf", TENSORRT_API)


def in_ci() -> bool:
    return bool(os.environ.get("CI"))


def missing_in_ci() -> list[Path]:
    """The folders of ../shared a CI run needs and does not have ([] outside CI)."""
    return [p for p in REQUIRED if not p.is_dir()] if in_ci() else []


def require(path: Path, what: str = "shared data") -> Path:
    """``path`` if it exists; otherwise skip the test, or fail it when ``CI`` is set."""
    if path.exists():
        return path
    message = f"{what} not found at {path} (../shared beside the repository)"
    if in_ci():
        pytest.fail(message, pytrace=False)
    pytest.skip(message)
