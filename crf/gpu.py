"""Where the dense CRF runs: ``"cpu"``, ``"cuda"`` or ``"auto"``.

The GPU CRF (crf/include/crf/gpu.hpp: pydensecrf's model on Thrust, deterministic) is reached from Python through the
extension ``crf._crf_gpu``, built only in CUDA builds of the package. Where it is absent, or no GPU runs it, ``cuda``
falls back to the CPU CRF with one warning.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from typing import Any

DEVICES = ("auto", "cpu", "cuda")
log = logging.getLogger(__name__)


@lru_cache(maxsize=1)
def cuda_status() -> tuple[bool, str]:
    """(whether the GPU CRF can run here, why not)."""
    try:
        from . import _crf_gpu  # type: ignore[attr-defined]
    except ImportError:
        return False, "this crf build has no GPU CRF (built without CUDA)"
    if not _crf_gpu.cuda_available():
        return False, "no CUDA device runs the CRF's kernels here"
    return True, ""


def cuda_available() -> bool:
    """Whether ``device="cuda"`` runs the CRF on a GPU here."""
    return cuda_status()[0]


def resolve_device(device: str) -> tuple[str, str]:
    """The device a CRF asked to run on `device` uses, and the reason when ``cuda`` falls back to ``cpu`` ("" else);
    ValueError for an unknown device. ``auto`` is ``cuda`` where available, else ``cpu`` (no reason given)."""
    if device not in DEVICES:
        raise ValueError(f"unknown CRF device {device!r}; known: {', '.join(DEVICES)}")
    if device == "cpu":
        return "cpu", ""
    ok, why = cuda_status()
    if ok:
        return "cuda", ""
    return "cpu", why if device == "cuda" else ""


@lru_cache(maxsize=None)
def warn_fallback(why: str) -> None:
    """Logs, once per reason, that a CRF asked for CUDA runs on the CPU."""
    log.warning("CRF on CUDA unavailable (%s); the CRF runs on the CPU", why)


def on_device(array: Any) -> bool:
    """Whether `array` is a CUDA array that DLPack hands over (torch / CuPy tensors on the GPU)."""
    device = getattr(array, "__dlpack_device__", None)
    return device is not None and device()[0] in (2, 13)  # kDLCUDA, kDLCUDAManaged


def refine_on_device(image: Any, probs: Any, params: Any, init: Any = None) -> Any:
    """One image through the GPU CRF (the extension's refiner for this thread; only called when
    :func:`cuda_available`): numpy arrays give a numpy result, CUDA arrays (DLPack: image uint8 H x W x 3, probs and
    init float32 n_labels x H x W, C-contiguous) a DLPack array on the same GPU, never copied through the host."""
    from . import _crf_gpu  # type: ignore[attr-defined]
    return _crf_gpu.refine(image, probs, init, *_fields(params))


def profile_on_device(image: Any, probs: Any, params: Any) -> dict[str, float]:
    """Seconds per phase of one GPU CRF (host arrays): upload, unary, lattice, normalisation, splat, blur, slice,
    download, and the bilateral lattice's size (bilateral_vertices); only called when :func:`cuda_available`."""
    from . import _crf_gpu  # type: ignore[attr-defined]
    return _crf_gpu.profile_refine(image, probs, *_fields(params))


def _fields(p: Any) -> tuple[Any, ...]:
    """RefineParams' fields in the extension's argument order."""
    return (int(p.iterations), float(p.gaussian_sxy), float(p.gaussian_weight), float(p.bilateral_sxy),
            float(p.bilateral_srgb), float(p.bilateral_weight), int(p.normalization), float(p.clip), float(p.scale),
            bool(p.half_rows))
