"""Image files: the suffixes the toolkit reads and its one image decoder (sources, datasets and calibration all read
through :func:`read_image`)."""
from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from runtime.preprocess import ImageError, to_bgr8

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm", ".pnm")


def read_image(path: str | os.PathLike[str]) -> np.ndarray:
    """Decode an image file as stored (any depth/channels) and convert to BGR uint8; ImageError when it can't, OSError
    when it cannot be read."""
    path = Path(path)
    data = np.fromfile(str(path), np.uint8) if path.stat().st_size else np.empty(0, np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if image is None:
        raise ImageError(f"cannot decode image file {path} "
                         f"({'empty file' if not data.size else 'corrupt or unsupported'})")
    if image.ndim == 3 and image.shape[2] == 4:
        image = image[:, :, :3]
    return to_bgr8(image)
