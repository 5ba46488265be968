"""Fast fully connected CRF (Krähenbühl & Koltun 2011) with a pydensecrf-compatible API.

    import crf
    q = crf.refine(image_hwc_uint8, probs_chw_float32, preset="voc")       # one call
    d = crf.DenseCRF2D(w, h, n_labels)                                      # pydensecrf style
"""

from . import gpu, presets, utils
from ._crf import clear_lattice_cache, get_num_threads, set_buffer_cache_limit, set_num_threads
from .densecrf import (
    CONST_KERNEL,
    DIAG_KERNEL,
    FULL_KERNEL,
    NO_NORMALIZATION,
    NORMALIZE_AFTER,
    NORMALIZE_BEFORE,
    NORMALIZE_SYMMETRIC,
    DenseCRF,
    DenseCRF2D,
)
from .refinement import (
    DEFAULT_LATTICE_CACHE,
    VIDEO_ITERATIONS,
    VIDEO_SCALE,
    LatticeCache,
    profile_refine,
    refine,
    refine_batch,
    refine_params,
)
from .presets import PRESETS, Preset

__all__ = [
    "CONST_KERNEL", "DEFAULT_LATTICE_CACHE", "DIAG_KERNEL", "FULL_KERNEL", "NO_NORMALIZATION", "NORMALIZE_AFTER", "NORMALIZE_BEFORE",
    "NORMALIZE_SYMMETRIC", "PRESETS", "DenseCRF", "DenseCRF2D", "LatticeCache", "Preset", "clear_lattice_cache", "get_num_threads",
    "gpu", "presets", "profile_refine", "refine", "refine_batch", "refine_params", "set_buffer_cache_limit", "set_num_threads", "utils",
    "VIDEO_ITERATIONS", "VIDEO_SCALE",
]
