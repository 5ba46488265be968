"""Bilinear upsampling of logits fused with softmax (the CRF's input) or argmax (labels when the CRF is off).

``x`` is N×C×h×w (or C×h×w) float32, ``size = (H, W)``. Results equal ``torch.nn.functional.interpolate(x, size,
mode="bilinear", align_corners=...)`` and its softmax/argmax over C. ``crop = (rows, cols)`` computes only the top-left
rows×cols of the H×W result: the network input was padded to a multiple of the output stride, so logits are upsampled
to the padded size and cropped back to the image without computing (or allocating) the padding.

CPU: the C++ extension ``runtime._upsample`` (multithreaded, fused, GIL released, no temporaries beyond the output);
a vectorized numpy version of the same arithmetic is the fallback when the extension is not built (3–10× slower: see
docs/runtime.md). CUDA: ``device="cuda"`` runs the kernels of runtime/kernels/bilinear_softmax.cu through NVRTC
(:mod:`runtime.upsample_cuda`).
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from runtime.backends.base import DeviceLogits
from runtime.upsample_cuda import default_upsampler

try:
    from runtime import _upsample as _ext
except ImportError:  # a source checkout without the compiled extension
    _ext = None

Size = tuple[int, int]


def _check(x: np.ndarray, size: Size, crop: Size | None) -> tuple[np.ndarray, bool, Size, Size]:
    x = np.asarray(x)
    squeeze = x.ndim == 3
    if squeeze:
        x = x[None]
    if x.ndim != 4 or 0 in x.shape:
        raise ValueError(f"x must be a non-empty N×C×h×w (or C×h×w) array, got shape {x.shape}")
    out_h, out_w = (int(v) for v in size)
    crop_h, crop_w = (out_h, out_w) if crop is None else (int(v) for v in crop)
    if out_h < 1 or out_w < 1 or not (1 <= crop_h <= out_h and 1 <= crop_w <= out_w):
        raise ValueError(f"bad size {size} / crop {crop}: sizes must be positive and the crop inside the size")
    return np.ascontiguousarray(x, dtype=np.float32), squeeze, (out_h, out_w), (crop_h, crop_w)


def taps(out_index: np.ndarray, in_size: int, out_size: int, align_corners: bool):
    """PyTorch's source indices and weights (float32 arithmetic) for output positions ``out_index``:
    ``(i0, i1, l0, l1)`` with value = l0·in[i0] + l1·in[i1]."""
    dst = out_index.astype(np.float32)
    if in_size == out_size:
        i0 = out_index.astype(np.intp)
        return i0, i0, np.ones_like(dst), np.zeros_like(dst)
    if align_corners:
        scale = np.float32((in_size - 1) / (out_size - 1)) if out_size > 1 else np.float32(0)
        src = scale * dst
    else:
        scale = np.float32(in_size) / np.float32(out_size)
        # a fused multiply-add, as PyTorch's compiled kernel: the float64 product of float32 values is exact
        src = np.maximum((np.float64(scale) * (dst + np.float32(0.5)) - 0.5).astype(np.float32), np.float32(0))
    i0 = np.minimum(np.floor(src).astype(np.intp), in_size - 1)
    l1 = np.clip(src - i0.astype(np.float32), 0, 1).astype(np.float32)
    i1 = i0 + (i0 < in_size - 1)
    return i0, i1, (np.float32(1) - l1).astype(np.float32), l1


def _numpy_bilinear(x: np.ndarray, size: Size, crop: Size, align_corners: bool) -> np.ndarray:
    (h, w), (out_h, out_w) = x.shape[2:], size
    y0, y1, ly0, ly1 = taps(np.arange(crop[0]), h, out_h, align_corners)
    x0, x1, lx0, lx1 = taps(np.arange(crop[1]), w, out_w, align_corners)
    r0, r1 = x[:, :, y0], x[:, :, y1]
    return (ly0[:, None] * (lx0 * r0[..., x0] + lx1 * r0[..., x1])
            + ly1[:, None] * (lx0 * r1[..., x0] + lx1 * r1[..., x1])).astype(np.float32)


def _numpy_softmax(values: np.ndarray) -> np.ndarray:
    values -= values.max(axis=1, keepdims=True)
    np.exp(values, out=values)
    values /= values.sum(axis=1, keepdims=True)
    return values


def _cpu(op: str) -> Callable:
    return getattr(_ext, op)


def _run(op: str, x, size, align_corners, crop, device) -> np.ndarray:
    if isinstance(x, DeviceLogits):  # logits already on a GPU: upsample there
        return _run_device(op, x, size, align_corners, crop)
    x, squeeze, size, crop = _check(x, size, crop)
    if device == "cuda":
        out = default_upsampler().run(op, x, size, crop, align_corners)
    elif device != "cpu":
        raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}")
    elif _ext is not None:
        out = _cpu(op)(x, size[0], size[1], crop[0], crop[1], bool(align_corners))
    else:
        values = _numpy_bilinear(x, size, crop, align_corners)
        if op == "bilinear":
            out = values
        elif op == "bilinear_softmax":
            out = _numpy_softmax(values)
        else:
            out = values.argmax(axis=1).astype(np.uint8 if op.endswith("u8") else np.int32)
    return out[0] if squeeze else out


def _run_device(op: str, x: DeviceLogits, size: Size, align_corners: bool, crop: Size | None) -> np.ndarray:
    squeeze = len(x.shape) == 3
    shape = (1, *x.shape) if squeeze else tuple(x.shape)
    out_h, out_w = (int(v) for v in size)
    crop_h, crop_w = (out_h, out_w) if crop is None else (int(v) for v in crop)
    if len(shape) != 4 or not (1 <= crop_h <= out_h and 1 <= crop_w <= out_w):
        raise ValueError(f"bad device logits {x.shape} / size {size} / crop {crop}")
    device_x = DeviceLogits(x.pointer, shape, x.dtype, x.device, x.owner)
    out = default_upsampler(x.device).run_device(op, device_x, (out_h, out_w), (crop_h, crop_w), align_corners)
    return out[0] if squeeze else out


def bilinear(x: np.ndarray, size: Size, align_corners: bool = False, crop: Size | None = None,
             device: str = "cpu") -> np.ndarray:
    """Bilinear resize of N×C×h×w float32 to N×C×H×W (N×C×crop when cropped)."""
    return _run("bilinear", x, size, align_corners, crop, device)


def bilinear_softmax(x: np.ndarray, size: Size, align_corners: bool = False, crop: Size | None = None,
                     device: str = "cpu") -> np.ndarray:
    """Softmax over C of the bilinear resize: probabilities, N×C×H×W float32 (N×C×crop when cropped)."""
    return _run("bilinear_softmax", x, size, align_corners, crop, device)


def bilinear_labels(x: np.ndarray, size: Size, align_corners: bool = False, crop: Size | None = None,
                    device: str = "cpu") -> np.ndarray:
    """Argmax over C of the bilinear resize (= of its softmax), N×H×W: uint8 for ≤ 256 classes, else int32."""
    x = x if isinstance(x, DeviceLogits) else np.asarray(x)
    channels = x.shape[-3] if len(x.shape) >= 3 else 0
    return _run("bilinear_argmax_u8" if channels <= 256 else "bilinear_argmax_i32", x, size, align_corners, crop,
                device)


def set_num_threads(threads: int) -> None:
    """Threads of the CPU implementation (0 = all cores)."""
    if _ext is not None:
        _ext.set_num_threads(int(threads))


def implementation() -> str:
    """``"c++"`` when the compiled extension is used on the CPU, else ``"numpy"``."""
    return "c++" if _ext is not None else "numpy"
