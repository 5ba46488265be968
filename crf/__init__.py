"""Fast fully connected CRF (Krähenbühl & Koltun 2011) with a pydensecrf-compatible API.

    import crf
    q = crf.refine(image_hwc_uint8, probs_chw_float32, preset="voc")       # one call
    d = crf.DenseCRF2D(w, h, n_labels)                                      # pydensecrf style
"""

from . import eigen, gpu, presets, utils
from ._crf import CrfConfig, clear_lattice_cache, get_num_threads, resolve_crf, set_buffer_cache_limit, set_num_threads
from .densecrf import (
    CONST_KERNEL,
    DIAG_KERNEL,
    FULL_KERNEL,
    NO_NORMALIZATION,
    NORMALIZE_AFTER,
    NORMALIZE_BEFORE,
    NORMALIZE_SYMMETRIC,
    ConstUnary,
    DenseCRF,
    DenseCRF2D,
    KernelType,
    LogisticUnary,
    NormalizationType,
    Unary,
)
from .refinement import (
    DEFAULT_LATTICE_CACHE,
    VIDEO_ITERATIONS,
    VIDEO_SCALE,
    LatticeCache,
    RefineParams,
    profile_refine,
    refine,
    refine_batch,
    refine_params,
)
from .presets import PRESETS, Preset

__all__ = [
    "CONST_KERNEL", "DEFAULT_LATTICE_CACHE", "DIAG_KERNEL", "FULL_KERNEL", "NO_NORMALIZATION", "NORMALIZE_AFTER", "NORMALIZE_BEFORE",
    "NORMALIZE_SYMMETRIC", "PRESETS", "ConstUnary", "DenseCRF", "DenseCRF2D", "KernelType", "LatticeCache", "LogisticUnary",
    "NormalizationType", "Preset", "Unary", "clear_lattice_cache", "eigen", "get_num_threads", "gpu", "presets",
    "profile_refine", "refine", "refine_batch", "refine_params", "set_buffer_cache_limit", "set_num_threads", "utils",
    "VIDEO_ITERATIONS", "VIDEO_SCALE", "CrfConfig", "RefineParams", "resolve_crf",
]
