"""pydensecrf.eigen: `vectorXf` / `matrixXf` and the rule behind them, which pydensecrf applies to every unary
and compatibility array: float32 and C-contiguous, never converted silently."""

from __future__ import annotations

from typing import Any

import numpy as np


def float32_buffer(a: Any, name: str, ndim: int) -> np.ndarray:
    """`a` as a float32 C-contiguous array of `ndim` dimensions, without a copy; pydensecrf's errors otherwise
    (TypeError for None or a non-buffer, ValueError for a wrong dtype, layout or dimension count)."""
    if a is None:
        raise TypeError(f"{name} must be a float32 array, got None")
    if not isinstance(a, np.ndarray):
        try:
            a = np.asarray(memoryview(a))
        except TypeError:
            raise TypeError(f"{name} must be a float32 array (numpy or another buffer), got {type(a).__name__}") from None
    if a.dtype != np.float32:
        raise ValueError(f"{name} must be float32 (as pydensecrf requires), got {a.dtype}: "
                         "pass np.ascontiguousarray(x, dtype=np.float32)")
    if a.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimension{'s' if ndim > 1 else ''}, got shape {a.shape}")
    if not a.flags.c_contiguous:
        raise ValueError(f"{name} must be C-contiguous (as pydensecrf requires): pass np.ascontiguousarray(x)")
    return a


def vectorXf(arr: Any) -> np.ndarray:
    """A copy of a float32 C-contiguous vector (pydensecrf.eigen.vectorXf)."""
    return float32_buffer(arr, "vector", 1).copy()


def matrixXf(arr: Any) -> np.ndarray:
    """A copy of a float32 C-contiguous matrix (pydensecrf.eigen.matrixXf)."""
    return float32_buffer(arr, "matrix", 2).copy()
