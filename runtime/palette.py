"""Colour maps of label images (n×3 uint8, RGB): the place for each data set's palette."""
from __future__ import annotations

from typing import Any

import numpy as np


def voc_palette(n: int = 256) -> np.ndarray:
    """The PASCAL VOC colour map (n×3 uint8, RGB): class 0 black, 1 maroon, 2 green, ..., 255 cream."""
    palette = np.zeros((n, 3), np.uint8)
    for i in range(n):
        c, r, g, b = i, 0, 0, 0
        for bit in range(8):
            r |= ((c >> 0) & 1) << (7 - bit)
            g |= ((c >> 1) & 1) << (7 - bit)
            b |= ((c >> 2) & 1) << (7 - bit)
            c >>= 3
        palette[i] = (r, g, b)
    return palette


PALETTE = voc_palette()


def palette_of(meta: Any) -> np.ndarray:
    """A model's 256×3 RGB palette: its metadata's ``extra["palette"]`` (the export records its class set's colours),
    the VOC colour map for the entries it does not list, or for a model without one."""
    palette = PALETTE.copy()
    colours = meta.extra.get("palette") if isinstance(getattr(meta, "extra", None), dict) else None
    try:
        given = np.asarray(colours if colours is not None else [], np.int64).reshape(-1, 3)[:256]
    except ValueError:
        return palette
    if given.size and given.min() >= 0 and given.max() <= 255:
        palette[: len(given)] = given
    return palette


def bgr_lut(palette: np.ndarray) -> np.ndarray:
    """``palette`` (256×3 RGB) as the 256×1×3 BGR table ``cv2.LUT`` takes."""
    return np.ascontiguousarray(palette[:, ::-1]).reshape(256, 1, 3)
