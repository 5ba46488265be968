"""What the Triton Python-backend models of ``python -m export triton`` compute, as plain functions.

The ``model.py`` files in a repository (templates in ``export/triton_models/``) only move tensors between Triton and
these functions, which call the runtime's own preprocessing, upsampling and CRF: the server's labels are the
in-process runtime's labels, and this module is tested without a server.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from runtime import upsample
from runtime.metadata import ModelMeta
from runtime.preprocess import padded_size, preprocess

META_PARAMETER = "deeplab_meta"


def model_parameters(model_config: str | dict) -> dict[str, str]:
    """``parameters`` of a Triton model config (the JSON Triton hands ``initialize``) as ``{key: string_value}``."""
    config = json.loads(model_config) if isinstance(model_config, str) else model_config
    return {k: v.get("string_value", "") for k, v in config.get("parameters", {}).items()}


def model_meta(parameters: dict[str, str]) -> ModelMeta:
    """The :class:`ModelMeta` a config carries in its ``deeplab_meta`` parameter."""
    if META_PARAMETER not in parameters:
        raise ValueError(f"the model config lacks the '{META_PARAMETER}' parameter; regenerate the repository with "
                         "`python -m export triton`")
    return ModelMeta.from_json(parameters[META_PARAMETER])


def parse_pad_to(text: str) -> tuple[int, int] | None:
    """``"512x512"`` -> (512, 512); empty -> None (pad to a multiple of the output stride)."""
    if not text.strip():
        return None
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"pad_to must be HxW (e.g. 512x512) or empty, got {text!r}") from None
    return h, w


def preprocess_batch(images: np.ndarray, meta: ModelMeta, pad_to: tuple[int, int] | None = None) -> np.ndarray:
    """N×H×W×3 uint8 BGR -> N×3×H'×W' float32, each image by :func:`runtime.preprocess.preprocess`."""
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"IMAGE must be N×H×W×3 uint8 (BGR), got shape {images.shape}")
    return np.concatenate([preprocess(image, meta, pad_to)[0] for image in images])


@dataclass(frozen=True)
class PostSettings:
    """``deeplab_post``'s parameters."""

    crf: bool = True
    crf_preset: str = "voc"
    crf_iterations: int | None = None
    pad_to: tuple[int, int] | None = None

    @classmethod
    def from_parameters(cls, parameters: dict[str, str]) -> "PostSettings":
        crf = parameters.get("crf", "true").strip().lower()
        if crf not in ("true", "false"):
            raise ValueError(f"the crf parameter must be true or false, got {crf!r}")
        iterations = parameters.get("crf_iterations", "").strip()
        return cls(crf=crf == "true", crf_preset=parameters.get("crf_preset", "voc").strip() or "voc",
                   crf_iterations=int(iterations) if iterations else None,
                   pad_to=parse_pad_to(parameters.get("pad_to", "")))


def postprocess(logits: np.ndarray, images: np.ndarray, meta: ModelMeta, settings: PostSettings,
                want_probs: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """N×C×h×w logits of the padded inputs + the N original images -> (N×H×W labels, N×C×H×W probabilities or None).

    Upsampled to the padded input size and cropped to the image, softmax, then the dense CRF on the image."""
    if logits.ndim != 4 or images.ndim != 4 or logits.shape[0] != images.shape[0]:
        raise ValueError(f"LOGITS (N×C×h×w) and IMAGE (N×H×W×3) disagree: {logits.shape} vs {images.shape}")
    h, w = images.shape[1:3]
    size = settings.pad_to or padded_size(h, w, meta.output_stride)
    logits = np.ascontiguousarray(logits, dtype=np.float32)
    if not settings.crf and not want_probs:
        labels = upsample.bilinear_labels(logits, size, meta.align_corners, crop=(h, w))
        return labels, None
    probs = upsample.bilinear_softmax(logits, size, meta.align_corners, crop=(h, w))
    if settings.crf:
        import crf

        kwargs = {"preset": settings.crf_preset}
        if settings.crf_iterations is not None:
            kwargs["iterations"] = settings.crf_iterations
        probs = np.stack([crf.refine(np.ascontiguousarray(img), p, **kwargs) for img, p in zip(images, probs)])
    labels = probs.argmax(axis=1).astype(np.uint8 if meta.n_classes <= 256 else np.int32)
    return labels, (probs if want_probs else None)


def infer_grouped(infer: Callable[[np.ndarray], np.ndarray], batches: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Run the requests Triton's dynamic batcher delivered together: one ``infer`` per input shape, results split
    back per request in order."""
    results: list[np.ndarray | None] = [None] * len(batches)
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, batch in enumerate(batches):
        groups.setdefault(tuple(batch.shape[1:]), []).append(i)
    for indices in groups.values():
        out = infer(np.concatenate([batches[i] for i in indices]) if len(indices) > 1 else batches[indices[0]])
        offsets = np.cumsum([0] + [batches[i].shape[0] for i in indices])
        for k, i in enumerate(indices):
            results[i] = out[offsets[k]:offsets[k + 1]]
    return results  # type: ignore[return-value]
