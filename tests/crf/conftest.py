"""Shared fixtures for the CRF tests: reference data (../shared/reference) and small real photos."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from shared_data import REFERENCE, require


def _reference_dir(sub: str) -> Path:
    return require(REFERENCE / sub, "reference data")


def _load_photo(name: str, size: tuple[int, int] | None = None) -> np.ndarray:
    """A reference photo as RGB uint8, optionally resized to (width, height)."""
    cv2 = pytest.importorskip("cv2")
    bgr = cv2.imread(str(_reference_dir("images") / name))
    assert bgr is not None, name
    if size is not None:
        bgr = cv2.resize(bgr, size, interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(bgr[:, :, ::-1])


@pytest.fixture(scope="session")
def pydensecrf():
    return pytest.importorskip("pydensecrf.densecrf")


@pytest.fixture(scope="session")
def reference_dir():
    """reference_dir(sub) -> Path of ../shared/reference/sub (skips the test when absent; fails under CI)."""
    return _reference_dir


@pytest.fixture(scope="session")
def load_photo():
    """load_photo(name, (width, height) | None) -> RGB uint8 photo from ../shared/reference/images."""
    return _load_photo
