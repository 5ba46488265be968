"""pydensecrf-compatible classes over the C++ core: change `import pydensecrf.densecrf as dcrf` to
`import crf as dcrf` and the code runs unchanged (faster, multithreaded, with the GIL released).

Unaries (`setUnaryEnergy`, `ConstUnary`, `LogisticUnary`) and compatibility vectors/matrices must be float32 and
C-contiguous, as in pydensecrf (ValueError otherwise, with the fix in the message). Differences from pydensecrf, all
on inputs it would reject or crash on: features of any real dtype are converted to float32 and copied when not
contiguous, and bad shapes, NaN/inf, out-of-range parameters or lattices too large to represent raise
ValueError/TypeError/OverflowError/MemoryError instead of aborting the process.
"""

from __future__ import annotations

import operator
from enum import IntEnum
from numbers import Number
from typing import Any

import numpy as np

from . import _crf
from .eigen import float32_buffer


class KernelType(IntEnum):
    """The kernel's precision matrix (pydensecrf.densecrf.KernelType)."""

    CONST_KERNEL = 0
    DIAG_KERNEL = 1
    FULL_KERNEL = 2


class NormalizationType(IntEnum):
    """How a kernel is normalised (pydensecrf.densecrf.NormalizationType)."""

    NO_NORMALIZATION = 0
    NORMALIZE_BEFORE = 1
    NORMALIZE_AFTER = 2
    NORMALIZE_SYMMETRIC = 3


CONST_KERNEL, DIAG_KERNEL, FULL_KERNEL = KernelType
NO_NORMALIZATION, NORMALIZE_BEFORE, NORMALIZE_AFTER, NORMALIZE_SYMMETRIC = NormalizationType

_POTTS, _DIAGONAL, _MATRIX = 0, 1, 2
_EMPTY = np.zeros(0, np.float32)


def as_float32(a: Any, name: str, shape: tuple[int | None, ...]) -> np.ndarray:
    """`a` as a C-contiguous float32 array of the given shape (None = any size); clear errors otherwise."""
    arr = np.asarray(a)
    if arr.dtype.kind not in "fiub":
        raise TypeError(f"{name} must be a real-valued array, got dtype {arr.dtype}")
    if arr.ndim != len(shape):
        raise ValueError(f"{name} must have {len(shape)} dimensions, got shape {arr.shape}")
    return np.ascontiguousarray(_shaped(arr, name, shape), dtype=np.float32)


def _count(value: Any, name: str) -> int:
    try:
        n = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}") from None
    if n < 0:
        raise ValueError(f"{name} must be >= 0, got {n}")
    return n


def _enum(value: Any, name: str, upper: int) -> int:
    v = operator.index(value)
    if not 0 <= v <= upper:
        raise ValueError(f"{name} must be in [0, {upper}], got {v}")
    return v


def _compat(compat: Any, n_labels: int) -> tuple[int, float, np.ndarray]:
    """pydensecrf's rule: a number is Potts, a float32 vector is diagonal, a float32 matrix is a full compatibility."""
    if isinstance(compat, bool):
        raise TypeError("compat must be a number, a vector or a matrix, got bool")
    if isinstance(compat, Number):
        w = float(compat)
        if not np.isfinite(w):
            raise ValueError(f"compat must be finite, got {w}")
        return _POTTS, w, _EMPTY
    try:
        ndim = memoryview(compat).ndim
    except TypeError:
        raise TypeError(f"compat must be a number or a float32 array, got {type(compat).__name__}") from None
    if ndim == 1:
        return _DIAGONAL, 0.0, _shaped(float32_buffer(compat, "compat (diagonal)", 1), "compat (diagonal)", (n_labels,))
    if ndim == 2:
        matrix = _shaped(float32_buffer(compat, "compat (matrix)", 2), "compat (matrix)", (n_labels, n_labels))
        return _MATRIX, 0.0, matrix.ravel()
    raise ValueError(f"compat must be a number, a vector or a matrix, got an array of {ndim} dimensions")


def _shaped(arr: np.ndarray, name: str, shape: tuple[int | None, ...]) -> np.ndarray:
    if any(s is not None and s != t for s, t in zip(shape, arr.shape)):
        want = str(tuple("?" if s is None else s for s in shape)).replace("'", "")
        raise ValueError(f"{name} must have shape {want}, got {arr.shape}")
    return arr


class Unary:
    """A unary energy (-log P, n_labels x n_pixels) for `DenseCRF.setUnary` (pydensecrf.densecrf.Unary)."""

    def __init__(self, energy: np.ndarray) -> None:
        self._energy = energy

    def energy(self) -> np.ndarray:
        """The energy, n_labels x n_pixels float32."""
        return self._energy


class ConstUnary(Unary):
    """A fixed unary energy `u` (float32 C-contiguous, n_labels x n_pixels)."""

    def __init__(self, u: Any) -> None:
        super().__init__(float32_buffer(u, "unary", 2).copy())


class LogisticUnary(Unary):
    """The unary energy `L @ f`: weights L (n_labels x n_features) times features f (n_features x n_pixels),
    both float32 C-contiguous."""

    def __init__(self, L: Any, f: Any) -> None:
        weights = float32_buffer(L, "unary weights", 2)
        feats = _shaped(float32_buffer(f, "unary features", 2), "unary features", (weights.shape[1], None))
        super().__init__(np.ascontiguousarray(weights @ feats, dtype=np.float32))


def _sigmas(value: Any, count: int, name: str) -> tuple[float, ...]:
    arr = np.asarray(value)
    if arr.dtype.kind not in "fiu" or arr.ndim > 1 or (arr.ndim == 1 and arr.size != count):
        raise ValueError(f"{name} must be a number or {count} numbers, got {value!r}")
    out = tuple(float(v) for v in np.broadcast_to(arr, (count,)))
    if not all(np.isfinite(v) and v != 0.0 for v in out):
        raise ValueError(f"{name} must be finite and non-zero, got {value!r}")
    return out


class DenseCRF:
    """Fully connected CRF over `nvar` variables with `nlabels` labels (pydensecrf.densecrf.DenseCRF)."""

    def __init__(self, nvar: int, nlabels: int) -> None:
        self._init(_crf.DenseCRF(_count(nvar, "nvar"), self._labels(nlabels)))

    @staticmethod
    def _labels(nlabels: Any) -> int:
        n = _count(nlabels, "nlabels")
        if n < 1:
            raise ValueError("nlabels must be >= 1")
        return n

    def _init(self, core: Any) -> None:
        self._core = core
        self._nvar = core.n_pixels
        self._nlabel = core.n_labels

    @property
    def n_pixels(self) -> int:
        return self._nvar

    @property
    def n_labels(self) -> int:
        return self._nlabel

    def setUnaryEnergy(self, u: Any, f: Any = None) -> None:
        """Unary energy -log P, n_labels x n_pixels float32; with `f` (n_features x n_pixels), U = u @ f."""
        if f is None:
            unary = float32_buffer(u, "unary", 2)
        else:
            unary = LogisticUnary(u, f).energy()
        self._core.set_unary_energy(_shaped(unary, "unary", (self._nlabel, self._nvar)))

    def setUnary(self, u: Unary) -> None:
        """Set a `ConstUnary` or `LogisticUnary` (pydensecrf's setUnary)."""
        if not isinstance(u, Unary):
            raise TypeError(f"setUnary takes a ConstUnary or LogisticUnary, got {type(u).__name__} "
                            "(for an array, use setUnaryEnergy)")
        self._core.set_unary_energy(_shaped(u.energy(), "unary", (self._nlabel, self._nvar)))

    def addPairwiseEnergy(self, features: Any, compat: Any, kernel: int = DIAG_KERNEL,
                          normalization: int = NORMALIZE_SYMMETRIC) -> None:
        feats = as_float32(features, "features", (None, self._nvar))
        if feats.shape[0] < 1:
            raise ValueError("features need at least one dimension")
        kind, w, values = _compat(compat, self._nlabel)
        self._core.add_pairwise_energy(feats, kind, w, values, _enum(kernel, "kernel", 2),
                                       _enum(normalization, "normalization", 3))

    def inference(self, niter: int) -> np.ndarray:
        """Mean-field inference; returns Q, n_labels x n_pixels float32."""
        return self._core.inference(_count(niter, "niter"))

    def startInference(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Q = softmax(-U) and two placeholders, for stepInference (as pydensecrf)."""
        return self._core.start_inference(), np.zeros(0, np.float32), np.zeros(0, np.float32)

    def stepInference(self, Q: np.ndarray, tmp1: Any = None, tmp2: Any = None) -> None:
        """One mean-field update of Q in place (Q: float32 C-contiguous n_labels x n_pixels)."""
        if not (isinstance(Q, np.ndarray) and Q.dtype == np.float32 and Q.flags.c_contiguous and Q.flags.writeable):
            raise TypeError("Q must be a writable C-contiguous float32 array (as returned by startInference)")
        if Q.shape != (self._nlabel, self._nvar):
            raise ValueError(f"Q must have shape {(self._nlabel, self._nvar)}, got {Q.shape}")
        if not np.isfinite(Q).all():
            raise ValueError("Q contains NaN or infinity")
        self._core.step_inference(Q)

    def setHalfRows(self, on: bool = True) -> bool:
        """Keep the lattice kernels' vertex values in half precision (not in pydensecrf): about a tenth faster on
        large lattices, results within about 1e-3 of float. Returns whether they are used (only where the CPU
        converts in vector instructions: x86-64 with AVX2 and F16C, AArch64)."""
        if not isinstance(on, (bool, np.bool_)):
            raise TypeError(f"on must be a bool, got {on!r}")
        return self._core.set_half_rows(bool(on))

    def klDivergence(self, Q: Any) -> float:
        """KL divergence of Q to the CRF distribution, up to the constant log Z."""
        q = as_float32(Q, "Q", (self._nlabel, self._nvar))
        if not np.isfinite(q).all():
            raise ValueError("Q contains NaN or infinity")
        return self._core.kl_divergence(q)


class DenseCRF2D(DenseCRF):
    """CRF over a `w` x `h` image (pydensecrf.densecrf.DenseCRF2D)."""

    def __init__(self, w: int, h: int, nlabels: int) -> None:
        self._w, self._h = _count(w, "w"), _count(h, "h")
        self._init(_crf.DenseCRF.new_2d(self._w, self._h, self._labels(nlabels)))

    def addPairwiseGaussian(self, sxy: Any, compat: Any, kernel: int = DIAG_KERNEL,
                            normalization: int = NORMALIZE_SYMMETRIC, *, lattice: bool = True) -> None:
        """Smoothness kernel over pixel positions, on pydensecrf's lattice. `lattice=False` (not in pydensecrf) filters
        a normalised kernel with sxy <= 4/3 (VOC's sxy = 1) as an exact separable Gaussian in image space instead,
        as `crf.refine` does: faster, and a slightly different kernel."""
        sx, sy = _sigmas(sxy, 2, "sxy")
        kind, w, values = _compat(compat, self._nlabel)
        self._core.add_pairwise_gaussian(sx, sy, kind, w, values, _enum(kernel, "kernel", 2),
                                         _enum(normalization, "normalization", 3), bool(lattice))

    def addPairwiseBilateral(self, sxy: Any, srgb: Any, rgbim: Any, compat: Any, kernel: int = DIAG_KERNEL,
                             normalization: int = NORMALIZE_SYMMETRIC) -> None:
        sx, sy = _sigmas(sxy, 2, "sxy")
        s0, s1, s2 = _sigmas(srgb, 3, "srgb")
        im = np.asarray(rgbim)
        if im.dtype != np.uint8:
            raise TypeError(f"rgbim must be uint8, got {im.dtype}")
        if im.shape[:2] != (self._h, self._w) or im.ndim != 3:
            raise ValueError(f"Bad shape for pairwise bilateral (Need {(self._h, self._w, 3)}, got {im.shape})")
        if im.shape[2] != 3:
            raise ValueError("addPairwiseBilateral only works for RGB images. For other types, use "
                             "`utils.create_pairwise_bilateral` and `addPairwiseEnergy`.")
        kind, w, values = _compat(compat, self._nlabel)
        self._core.add_pairwise_bilateral(sx, sy, s0, s1, s2, np.ascontiguousarray(im), kind, w, values,
                                          _enum(kernel, "kernel", 2), _enum(normalization, "normalization", 3))
