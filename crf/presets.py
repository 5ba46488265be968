"""Named CRF settings for `crf.refine` (a smoothness Gaussian kernel + an appearance bilateral kernel)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from . import _crf
from .densecrf import NORMALIZE_SYMMETRIC


@dataclass(frozen=True)
class Preset:
    """Mean-field iterations and the two Potts kernels' weights and standard deviations (pixels, 0-255)."""

    iterations: int
    gaussian_sxy: float
    gaussian_weight: float
    bilateral_sxy: float
    bilateral_srgb: float
    bilateral_weight: float
    normalization: int = NORMALIZE_SYMMETRIC
    scale: float = 1.0  # CRF resolution relative to the image, in (0, 1] (below 1: a cheaper, coarser CRF)
    half_rows: bool = True  # lattice vertex values in half precision where supported (DenseCRF.setHalfRows)

    def with_overrides(self, **overrides: Any) -> "Preset":
        """A copy with the given fields replaced (None values are ignored)."""
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})


def _from_cpp(p: Any) -> Preset:
    return Preset(iterations=p.iterations, gaussian_sxy=p.gaussian_sxy, gaussian_weight=p.gaussian_weight,
                  bilateral_sxy=p.bilateral_sxy, bilateral_srgb=p.bilateral_srgb,
                  bilateral_weight=p.bilateral_weight, normalization=p.normalization, scale=p.scale,
                  half_rows=p.half_rows)


# Defined once, in C++ (crf::preset, crf/include/crf/settings.hpp), shared with the C++ runtime: "voc" is DeepLab v2's
# published PASCAL VOC setting (with pydensecrf's default normalisation, as the widely used PyTorch port runs it),
# "pydensecrf" the one of pydensecrf's example script (examples/inference.py).
PRESETS: dict[str, Preset] = {name: _from_cpp(_crf.preset(name)) for name in _crf.preset_names()}


def get_preset(preset: "str | Preset") -> Preset:
    """The preset called `preset` (or `preset` itself); ValueError naming the known ones otherwise."""
    if isinstance(preset, Preset):
        return preset
    try:
        return PRESETS[preset]
    except (KeyError, TypeError):
        raise ValueError(f"unknown CRF preset {preset!r}; known: {', '.join(sorted(PRESETS))}") from None
