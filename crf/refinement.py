"""One-call CRF refinement for the segmentation pipeline: image + softmax probabilities -> refined probabilities."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from . import _crf, gpu
from .presets import Preset, get_preset

LatticeCache = _crf.LatticeCache
RefineParams = _crf.RefineParams
# CRFs use this cache of smoothness lattices unless given another (one entry, shared by the whole process).
DEFAULT_LATTICE_CACHE = _crf.LatticeCache.process_default()
# The CRF for video sources (RefineParams::video in C++, shared with the C++ runtime): this many iterations at this
# resolution (see `scale` in crf/presets.py).
VIDEO_ITERATIONS: int = _crf.VIDEO_ITERATIONS
VIDEO_SCALE: float = _crf.VIDEO_SCALE


def refine_params(preset: "str | Preset" = "voc", iterations: int | None = None, clip: float = 1e-5,
                  **overrides: Any) -> Any:
    """The C++ parameters for `preset` with `iterations` and any field overridden; ValueError for a bad value (the
    checks are RefineParams::validate's, shared with the C++ runtime)."""
    p = get_preset(preset).with_overrides(iterations=iterations, **overrides)
    if isinstance(p.iterations, bool) or not isinstance(p.iterations, (int, np.integer)):
        raise ValueError(f"iterations must be an integer >= 0, got {p.iterations!r}")
    if isinstance(p.normalization, bool) or not isinstance(p.normalization, (int, np.integer)):
        raise ValueError(f"normalization must be in [0, 3], got {p.normalization!r}")
    if not isinstance(p.half_rows, (bool, np.bool_)):
        raise ValueError(f"half_rows must be a bool, got {p.half_rows!r}")
    return _crf.RefineParams(int(p.iterations), float(p.gaussian_sxy), float(p.gaussian_weight),
                             float(p.bilateral_sxy), float(p.bilateral_srgb), float(p.bilateral_weight),
                             int(p.normalization), float(clip), float(p.scale), bool(p.half_rows))


def _params(preset: "str | Preset | RefineParams", iterations: int | None, clip: float,
            overrides: dict[str, Any]) -> Any:
    """`preset` itself when it is resolved RefineParams (nothing else may be given then), else refine_params'."""
    if isinstance(preset, RefineParams):
        if iterations is not None or overrides:
            raise TypeError("iterations and overrides cannot be combined with resolved RefineParams")
        return preset
    return refine_params(preset, iterations, clip, **overrides)


def _image(image: Any) -> np.ndarray:
    im = np.asarray(image)
    if im.dtype != np.uint8:
        raise TypeError(f"image must be uint8, got {im.dtype}")
    if im.ndim == 2:  # grayscale: the colour kernel sees the same value in every channel
        im = np.repeat(im[:, :, None], 3, axis=2)
    if im.ndim != 3 or im.shape[2] != 3:
        raise ValueError(f"image must be H x W x 3 (or H x W), got shape {im.shape}")
    return np.ascontiguousarray(im)


def _probs(probs: Any, shape: tuple[int, int]) -> np.ndarray:
    p = np.asarray(probs)
    if p.dtype.kind != "f":
        raise TypeError(f"probs must be floating point (softmax output), got {p.dtype}")
    if p.ndim != 3 or p.shape[1:] != shape:
        raise ValueError(f"probs must be n_labels x {shape[0]} x {shape[1]} to match the image, got {p.shape}")
    if p.shape[0] < 1:
        raise ValueError("probs need at least one label")
    return np.ascontiguousarray(p, dtype=np.float32)


def _threads(threads: int | None) -> int:
    if threads is None:
        return 0
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 1:
        raise ValueError(f"threads must be an integer >= 1 or None, got {threads!r}")
    return int(threads)


def refine(image: Any, probs: Any, iterations: int | None = None, preset: "str | Preset | RefineParams" = "voc", *,
           clip: float = 1e-5, init: Any = None, threads: int | None = None,
           lattice_cache: LatticeCache | None = DEFAULT_LATTICE_CACHE, device: str = "cpu",
           **overrides: Any) -> np.ndarray:
    """Refine `probs` (n_labels x H x W softmax probabilities) with a dense CRF on `image` (H x W x 3 uint8).

    Unary = -log(clip(probs, clip, 1)); kernels and iterations come from `preset` ("voc": DeepLab v2,
    "pydensecrf": pydensecrf's example), any field overridable by keyword (e.g. bilateral_srgb=5); or `preset` is
    RefineParams resolved once (CrfConfig.params(), refine_params), used as they are.
    `init` (n_labels x H x W, e.g. the previous video frame's result): mean field starts from it instead of from
    the unary (warm start). `threads`: at most this many threads for this call (None: crf.set_num_threads's count).
    `lattice_cache`: where the smoothness lattice is looked up and kept (None: nowhere). `device`: "cpu", "cuda"
    (the GPU CRF, crf.gpu; falls back to the CPU with one warning where it cannot run) or "auto". Returns refined
    probabilities, n_labels x H x W float32.
    """
    where, why = gpu.resolve_device(device)
    if why:
        gpu.warn_fallback(why)
    if where == "cuda":
        params = _params(preset, iterations, clip, overrides)
        if gpu.on_device(probs):  # frames on the GPU stay there (DLPack in, DLPack out)
            return gpu.refine_on_device(image, probs, params, init)
        im = _image(image)
        return gpu.refine_on_device(im, _probs(probs, im.shape[:2]), params,
                                    None if init is None else _probs(init, im.shape[:2]))
    inits = None if init is None else [init]
    return refine_batch([image], [probs], iterations, preset, clip=clip, inits=inits, threads=threads,
                        lattice_cache=lattice_cache, **overrides)[0]


def refine_batch(images: Sequence[Any], probs: Sequence[Any], iterations: int | None = None,
                 preset: "str | Preset | RefineParams" = "voc", *, clip: float = 1e-5, inits: Sequence[Any] | None = None,
                 threads: int | None = None, lattice_cache: LatticeCache | None = DEFAULT_LATTICE_CACHE,
                 **overrides: Any) -> list[np.ndarray]:
    """`refine` over several images, one image per thread (images may differ in size); `inits`: one warm start
    per image, or None."""
    if len(images) != len(probs):
        raise ValueError(f"got {len(images)} images but {len(probs)} probability maps")
    params = _params(preset, iterations, clip, overrides)
    ims = [_image(im) for im in images]
    ps = [_probs(p, im.shape[:2]) for im, p in zip(ims, probs)]
    starts = []
    if inits is not None:
        if len(inits) != len(ps):
            raise ValueError(f"got {len(inits)} inits for {len(ps)} probability maps")
        starts = [_probs(q, p.shape[1:]) for q, p in zip(inits, ps)]
        for q, p in zip(starts, ps):
            if q.shape != p.shape:
                raise ValueError(f"init must have the shape of probs {p.shape}, got {q.shape}")
    return _crf.refine_batch(ims, ps, params, starts, _threads(threads), lattice_cache)


def profile_refine(image: Any, probs: Any, iterations: int | None = None, preset: "str | Preset" = "voc", *,
                   clip: float = 1e-5, threads: int | None = None,
                   lattice_cache: LatticeCache | None = DEFAULT_LATTICE_CACHE, **overrides: Any) -> dict[str, Any]:
    """`refine` once, returning the seconds spent per phase instead of the result: unary, smoothness_lattice,
    bilateral_lattice, normalisation (both kernels), splat, blur, slice (with the compatibility and softmax), and
    the lattices' sizes (smoothness_vertices, bilateral_vertices)."""
    im = _image(image)
    _, phases = _crf.profile_refine(im, _probs(probs, im.shape[:2]), refine_params(preset, iterations, clip, **overrides),
                                    _threads(threads), lattice_cache)
    phases["normalisation"] = phases.pop("smoothness_normalisation") + phases.pop("bilateral_normalisation")
    return phases
