"""Named CRF settings for `crf.refine` (a smoothness Gaussian kernel + an appearance bilateral kernel)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

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

    def with_overrides(self, **overrides: Any) -> "Preset":
        """A copy with the given fields replaced (None values are ignored)."""
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})


PRESETS: dict[str, Preset] = {
    # DeepLab v2 on PASCAL VOC (its published CRF settings; pydensecrf's default normalisation,
    # as the widely used PyTorch port runs it).
    "voc": Preset(iterations=10, gaussian_sxy=1.0, gaussian_weight=3.0,
                  bilateral_sxy=67.0, bilateral_srgb=3.0, bilateral_weight=4.0),
    # pydensecrf's example script (examples/inference.py).
    "pydensecrf": Preset(iterations=5, gaussian_sxy=3.0, gaussian_weight=3.0,
                         bilateral_sxy=80.0, bilateral_srgb=13.0, bilateral_weight=10.0),
}


def get_preset(preset: "str | Preset") -> Preset:
    """The preset called `preset` (or `preset` itself); ValueError naming the known ones otherwise."""
    if isinstance(preset, Preset):
        return preset
    try:
        return PRESETS[preset]
    except (KeyError, TypeError):
        raise ValueError(f"unknown CRF preset {preset!r}; known: {', '.join(sorted(PRESETS))}") from None
