"""Unary and pairwise helpers with the arguments and semantics of `pydensecrf.utils`, plus logits."""

from __future__ import annotations

import warnings
from numbers import Number
from typing import Any, Sequence

import numpy as np


def unary_from_labels(labels: Any, n_labels: int, gt_prob: float, zero_unsure: bool = True) -> np.ndarray:
    """Unary (n_labels x N float32) from a hard label map: the given label has probability `gt_prob`,
    the others share the rest. With `zero_unsure`, labels are 1..n_labels and 0 means "unknown"
    (uniform); otherwise labels are 0..n_labels-1."""
    if not 0 < gt_prob < 1:
        raise ValueError(f"gt_prob must be in (0, 1), got {gt_prob}")
    if n_labels < 2:
        raise ValueError(f"n_labels must be >= 2, got {n_labels}")
    lab = np.asarray(labels).ravel()
    if lab.dtype.kind not in "iub":
        raise TypeError(f"labels must be integers, got {lab.dtype}")
    lo, hi = (0, n_labels) if zero_unsure else (0, n_labels - 1)
    if lab.size and (lab.min() < lo or lab.max() > hi):
        raise ValueError(f"labels must be in [{lo}, {hi}], got [{lab.min()}, {lab.max()}]")
    lab = lab.astype(np.int64)
    n_energy = -np.log((1.0 - gt_prob) / (n_labels - 1))
    p_energy = -np.log(gt_prob)
    u = np.full((n_labels, lab.size), n_energy, dtype=np.float32)
    u[lab - 1 if zero_unsure else lab, np.arange(lab.size)] = p_energy
    if zero_unsure:
        u[:, lab == 0] = -np.log(1.0 / n_labels)
    return u


def unary_from_softmax(sm: Any, scale: float | None = None, clip: float | None = 1e-5) -> np.ndarray:
    """Unary -log(p) from class probabilities (first axis = classes, the rest flattened), float32.
    `scale` mixes in the uniform distribution (p -> scale p + (1 - scale) / n); `clip` bounds p below."""
    sm = np.asarray(sm)
    if sm.dtype.kind not in "fiu":
        raise TypeError(f"probabilities must be real numbers, got {sm.dtype}")
    if sm.dtype == np.float16:
        sm = sm.astype(np.float32)
    num_cls = sm.shape[0]
    if scale is not None:
        if not 0 < scale <= 1:
            raise ValueError(f"scale must be in (0, 1], got {scale}")
        sm = scale * sm + (1 - scale) * (np.ones(sm.shape) / num_cls)
    if clip is not None:
        sm = np.clip(sm, clip, 1.0)
    with np.errstate(divide="ignore"):
        return -np.log(sm).reshape([num_cls, -1]).astype(np.float32)


def compute_unary(labels: Any, M: int, GT_PROB: float = 0.5) -> np.ndarray:
    """Deprecated alias of `unary_from_labels(labels, M, GT_PROB)`, as in pydensecrf."""
    warnings.warn("compute_unary is deprecated, use unary_from_labels instead", DeprecationWarning, stacklevel=2)
    return unary_from_labels(labels, M, GT_PROB)


def softmax_to_unary(sm: Any, GT_PROB: float = 1) -> np.ndarray:
    """Deprecated alias of `unary_from_softmax(sm, scale=GT_PROB (None for 1), clip=None)`, as in pydensecrf."""
    warnings.warn("softmax_to_unary is deprecated, use unary_from_softmax instead", DeprecationWarning, stacklevel=2)
    return unary_from_softmax(sm, None if GT_PROB == 1 else GT_PROB, clip=None)


def unary_from_logits(logits: Any) -> np.ndarray:
    """Unary -log softmax(logits) (first axis = classes, the rest flattened), float32."""
    x = np.asarray(logits, dtype=np.float64)
    x = x.reshape(x.shape[0], -1)
    m = x.max(axis=0, keepdims=True)
    lse = m + np.log(np.exp(x - m).sum(axis=0, keepdims=True))
    return (lse - x).astype(np.float32)


def create_pairwise_gaussian(sdims: Sequence[float], shape: Sequence[int]) -> np.ndarray:
    """Position features (len(shape) x N): the index along each axis divided by sdims
    (for a 2-D image: rows / sdims[0], columns / sdims[1])."""
    mesh = np.array(np.meshgrid(*[np.arange(s) for s in shape], indexing="ij"), dtype=np.float32)
    for i, s in enumerate(sdims):
        mesh[i] /= s
    return mesh.reshape([len(sdims), -1])


def create_pairwise_bilateral(sdims: Sequence[float], schan: "float | Sequence[float]", img: Any,
                              chdim: int = -1) -> np.ndarray:
    """Position + channel features ((len(sdims) + channels) x N): positions / sdims, channels / schan.
    `chdim` is the image's channel axis (-1: a single-channel image without one)."""
    img = np.asarray(img)
    feat = img[np.newaxis].astype(np.float32) if chdim == -1 else np.rollaxis(img, chdim).astype(np.float32)
    if isinstance(schan, Number):
        feat /= schan
    else:
        for i, s in enumerate(schan):
            feat[i] /= s
    mesh = np.array(np.meshgrid(*[np.arange(s) for s in feat.shape[1:]], indexing="ij"), dtype=np.float32)
    for i, s in enumerate(sdims):
        mesh[i] /= s
    feats = np.concatenate([mesh, feat])
    return feats.reshape([feats.shape[0], -1])


def synthetic_probabilities(height: int, width: int, n_labels: int = 21, seed: int = 0, stride: int = 8,
                            region: int = 6, confidence: float = 4.0) -> np.ndarray:
    """DCNN-like soft probabilities (n_labels x height x width float32) for tests and benchmarks.

    A random but smooth label map at 1/`stride` resolution (blobs about `region` cells wide), turned
    into noisy logits, upsampled bilinearly (align_corners=False) to full size and softmaxed, so the
    result is confident inside regions and uncertain at their blurred boundaries, like a network's.
    """
    rng = np.random.default_rng(seed)
    h, w = max(1, -(-height // stride)), max(1, -(-width // stride))
    coarse = rng.integers(0, n_labels, size=(-(-h // region) + 1, -(-w // region) + 1))
    labels = coarse[np.arange(h) // region][:, np.arange(w) // region]
    logits = confidence * np.eye(n_labels, dtype=np.float32)[labels].transpose(2, 0, 1)
    logits += rng.normal(0.0, 1.0, size=logits.shape).astype(np.float32)

    def axis_weights(n_out: int, n_in: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        x = np.clip((np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5, 0, n_in - 1)
        i0 = np.floor(x).astype(np.int64)
        return i0, np.minimum(i0 + 1, n_in - 1), (x - i0).astype(np.float32)

    y0, y1, fy = axis_weights(height, h)
    x0, x1, fx = axis_weights(width, w)
    rows = logits[:, y0] * (1 - fy)[None, :, None] + logits[:, y1] * fy[None, :, None]
    up = rows[:, :, x0] * (1 - fx) + rows[:, :, x1] * fx
    up = np.exp(up - up.max(axis=0, keepdims=True))
    return (up / up.sum(axis=0, keepdims=True)).astype(np.float32)
