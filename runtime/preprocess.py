"""Image -> network input, exactly as the model's metadata says. The one copy used by the runtime, eval and calibration."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from runtime.errors import FrameError
from runtime.metadata import ModelMeta


class ImageError(FrameError, ValueError):
    """An image the pipeline cannot use (empty, wrong channel count or dtype)."""


@dataclass(frozen=True)
class Padding:
    """Where the real image sits inside the padded network input."""

    height: int
    width: int
    padded_height: int
    padded_width: int


def to_bgr8(image: np.ndarray) -> np.ndarray:
    """Normalize a decoded image to H×W×3 uint8 BGR: grayscale, BGRA and 16-bit inputs are converted."""
    if not isinstance(image, np.ndarray):
        raise ImageError(f"image must be a numpy array, got {type(image).__name__}")
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3 or image.shape[2] not in (1, 3, 4):
        raise ImageError(f"image must be H×W, H×W×1, H×W×3 or H×W×4, got shape {image.shape}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ImageError(f"image is empty (shape {image.shape})")
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    elif image.dtype in (np.float32, np.float64):
        if not np.isfinite(image).all():
            raise ImageError("image has NaN or infinite values")
        image = np.clip(image * 255.0 if image.max() <= 1.0 else image, 0, 255).astype(np.uint8)
    elif image.dtype != np.uint8:
        raise ImageError(f"image dtype {image.dtype} is not supported (uint8, uint16 or float)")
    if image.shape[2] == 1:
        image = np.repeat(image, 3, axis=2)
    elif image.shape[2] == 4:
        image = image[:, :, :3]
    return np.ascontiguousarray(image)


def padded_size(height: int, width: int, multiple: int) -> tuple[int, int]:
    """The smallest size ≥ (height, width) whose sides are multiples of ``multiple``."""
    return (-(-height // multiple) * multiple, -(-width // multiple) * multiple)


def preprocess(image_bgr: np.ndarray, meta: ModelMeta, pad_to: tuple[int, int] | None = None) -> tuple[np.ndarray, Padding]:
    """BGR uint8 H×W×3 -> 1×3×H'×W' float32 network input, padded (zeros after normalization) to ``pad_to`` or to a
    multiple of the output stride. Returns the input and the :class:`Padding` needed to crop outputs back."""
    image = to_bgr8(image_bgr)
    h, w = image.shape[:2]
    ph, pw = pad_to if pad_to is not None else padded_size(h, w, meta.output_stride)
    if ph < h or pw < w:
        raise ImageError(f"image {h}×{w} is larger than the model input {ph}×{pw}")
    # Plane by plane into the preallocated input (no full-size temporaries: ~5× faster than one broadcast expression);
    # only the padding is zeroed.
    x = np.empty((1, 3, ph, pw), np.float32)
    x[0, :, h:, :] = 0
    x[0, :, :h, w:] = 0
    for c, name in enumerate(meta.channel_order):
        plane = x[0, c, :h, :w]
        np.subtract(image[:, :, "BGR".index(name)], np.float32(meta.mean[c]), out=plane, dtype=np.float32)
        if meta.scale[c] != 1.0:
            plane *= np.float32(meta.scale[c])
    return x, Padding(h, w, ph, pw)


def logits_size(padding: Padding, output_stride: int) -> tuple[int, int]:
    """The logit rows/cols that cover the real (unpadded) image: ceil(h / stride), ceil(w / stride)."""
    return (-(-padding.height // output_stride), -(-padding.width // output_stride))
