"""What the Triton Python-backend models of ``python -m export triton`` compute, as plain functions.

The ``model.py`` files in a repository (templates in ``export/triton_models/``) only move tensors between Triton and
these functions, which call the runtime's own preprocessing and :class:`runtime.Segmenter`'s stages (upsampling,
softmax, CRF): the server's labels are the in-process runtime's labels, and this module is tested without a server.
"""
from __future__ import annotations

import ctypes
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from runtime.backends.base import Backend, BackendError
from runtime.metadata import TRITON_META_PARAMETER, ModelMeta, read_meta
from runtime.preprocess import Padding, padded_size, preprocess
from runtime.segmenter import DEFAULT_CRF, Segmenter

def model_parameters(model_config: str | dict) -> dict[str, str]:
    """``parameters`` of a Triton model config (the JSON Triton hands ``initialize``) as ``{key: string_value}``."""
    config = json.loads(model_config) if isinstance(model_config, str) else model_config
    return {k: v.get("string_value", "") for k, v in config.get("parameters", {}).items()}


def model_meta(parameters: dict[str, str]) -> ModelMeta:
    """The :class:`ModelMeta` a config carries in its ``deeplab_meta`` parameter."""
    return read_meta(parameters, TRITON_META_PARAMETER, "the model config",
                     "regenerate the repository with `python -m export triton`")


def parse_pad_to(text: str) -> tuple[int, int] | None:
    """``"512x512"`` -> (512, 512); empty -> None (pad to a multiple of the output stride)."""
    if not text.strip():
        return None
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"pad_to must be HxW (e.g. 512x512) or empty, got {text!r}") from None
    return h, w


def preprocess_batch(images: np.ndarray, meta: ModelMeta, pad_to: tuple[int, int] | None = None,
                     dtype: np.dtype | type = np.float32) -> np.ndarray:
    """N×H×W×3 uint8 BGR -> N×3×H'×W' of ``dtype`` (the network's input type), each image by
    :func:`runtime.preprocess.preprocess`."""
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"IMAGE must be N×H×W×3 uint8 (BGR), got shape {images.shape}")
    return np.concatenate([preprocess(image, meta, pad_to)[0] for image in images]).astype(dtype, copy=False)


@dataclass(frozen=True)
class PostSettings:
    """``deeplab_post``'s parameters. ``crf_preset="default"`` is the model's own preset (else voc), as in
    :class:`runtime.Segmenter`."""

    crf: bool = True
    crf_preset: str = DEFAULT_CRF
    crf_iterations: int | None = None
    pad_to: tuple[int, int] | None = None

    @classmethod
    def from_parameters(cls, parameters: dict[str, str]) -> "PostSettings":
        crf = parameters.get("crf", "true").strip().lower()
        if crf not in ("true", "false"):
            raise ValueError(f"the crf parameter must be true or false, got {crf!r}")
        iterations = parameters.get("crf_iterations", "").strip()
        return cls(crf=crf == "true", crf_preset=parameters.get("crf_preset", "").strip() or DEFAULT_CRF,
                   crf_iterations=int(iterations) if iterations else None,
                   pad_to=parse_pad_to(parameters.get("pad_to", "")))


class _NetworkElsewhere(Backend):
    """The :class:`Backend` of a Segmenter whose network runs in another Triton model (``deeplab_dcnn``)."""

    name = "triton-ensemble"

    def __init__(self, meta: ModelMeta, fixed_input_size: tuple[int, int] | None) -> None:
        self.meta = meta
        self.fixed_input_size = fixed_input_size

    def input_size(self, height: int, width: int) -> tuple[int, int] | None:
        return self.fixed_input_size

    def infer(self, batch: np.ndarray) -> np.ndarray:
        raise BackendError("deeplab_post gets logits from deeplab_dcnn; it runs no network")

    def close(self) -> None:
        pass


class PostProcessor:
    """LOGITS + IMAGE -> LABELS (+ PROBS) through the stage methods of :class:`runtime.Segmenter` (upsample, refine,
    argmax, labels): the same code, settings and defaults as the in-process runtime."""

    def __init__(self, meta: ModelMeta, settings: PostSettings) -> None:
        self.meta, self.settings = meta, settings
        self.segmenter = Segmenter(_NetworkElsewhere(meta, settings.pad_to),
                                   crf=settings.crf_preset if settings.crf else None,
                                   crf_iterations=settings.crf_iterations)

    def padding(self, height: int, width: int) -> Padding:
        ph, pw = self.settings.pad_to or padded_size(height, width, self.meta.output_stride)
        return Padding(height, width, ph, pw)

    def __call__(self, logits: np.ndarray, images: np.ndarray,
                 want_probs: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
        """N×C×h×w logits of the padded inputs + the N original images -> (N×H×W labels, N×C×H×W or None)."""
        if logits.ndim != 4 or images.ndim != 4 or logits.shape[0] != images.shape[0]:
            raise ValueError(f"LOGITS (N×C×h×w) and IMAGE (N×H×W×3) disagree: {logits.shape} vs {images.shape}")
        seg = self.segmenter
        padding = self.padding(*images.shape[1:3])
        labels, probs = [], []
        for image, frame_logits in zip(images, np.ascontiguousarray(logits, dtype=np.float32)):
            if seg.crf is None and not want_probs:
                labels.append(seg.labels(frame_logits, padding))
                continue
            p = seg.refine(image, seg.upsample(frame_logits, padding))
            labels.append(seg.argmax(p))
            probs.append(p)
        return np.stack(labels), (np.stack(probs) if want_probs else None)


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


# Triton's Python-backend stub is compiled against numpy 1's C-API. Under numpy 1, ``as_numpy()`` and
# ``pb_utils.Tensor(name, array)`` are its native path. Under numpy 2, ``pb_utils.Tensor(name, array)`` loses the
# array's bytes (Triton then reports a byte-size mismatch), so tensors go through DLPack, which does not depend on
# numpy's ABI.
NUMPY_2 = int(np.__version__.split(".")[0]) >= 2


def from_triton(tensor: Any) -> np.ndarray:
    """A ``pb_utils.Tensor`` (an input of a request) as a numpy array, without a copy."""
    return np.from_dlpack(tensor) if NUMPY_2 else tensor.as_numpy()


def to_triton(tensor_class: Any, name: str, array: np.ndarray) -> Any:
    """``pb_utils.Tensor`` ``name`` holding ``array`` (made C-contiguous), by the path this numpy supports."""
    array = np.ascontiguousarray(array)
    if not NUMPY_2:
        return tensor_class(name, array)
    capsule = array.__dlpack__()
    tensor = tensor_class.from_dlpack(name, capsule)
    _mark_consumed(capsule)
    return tensor


# The DLPack protocol's names for a capsule before and after a consumer took its tensor. The stub renames the capsule
# it consumes to a name of its own, which numpy's capsule destructor does not know: it would print "PyCapsule_GetPointer
# called with incorrect name" for every tensor. Naming it "used_dltensor" after the hand-over says what is true (the
# tensor has an owner) and leaves numpy's destructor nothing to do. A capsule keeps the pointer to its name, so the
# name's bytes hold one reference that is never released: they outlive every capsule, even at interpreter exit.
_CAPSULE_NAME = b"dltensor"
_USED_CAPSULE_NAME = b"used_dltensor"
_capsule_call = ctypes.PYFUNCTYPE(ctypes.c_int, ctypes.py_object, ctypes.c_char_p)
_capsule_is_valid = _capsule_call(("PyCapsule_IsValid", ctypes.pythonapi))
_capsule_set_name = _capsule_call(("PyCapsule_SetName", ctypes.pythonapi))
ctypes.pythonapi.Py_IncRef(ctypes.py_object(_USED_CAPSULE_NAME))


def _mark_consumed(capsule: Any) -> None:
    """Rename a capsule that its consumer renamed to a non-standard name (a capsule still named "dltensor" was not
    consumed and keeps its destructor)."""
    if not (_capsule_is_valid(capsule, _CAPSULE_NAME) or _capsule_is_valid(capsule, _USED_CAPSULE_NAME)):
        _capsule_set_name(capsule, _USED_CAPSULE_NAME)
