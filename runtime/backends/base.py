"""The one small interface every inference backend implements: preprocessed batch in, logits out."""
from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from runtime.metadata import ModelMeta


class BackendError(RuntimeError):
    """A backend could not load a model or run it; the message says why in one line."""


class BackendUnavailable(BackendError):
    """The backend's server or device is gone: every later frame would fail the same way, so a pipeline stops."""


@runtime_checkable
class Backend(Protocol):
    """A loaded model. ``infer`` takes N×3×H×W float32 (already preprocessed, H and W multiples of the output stride)
    and returns N×C×h×w float32 logits at 1/stride (DeepLab's Caffe layout gives h = H/8 + 1: the runtime upsamples
    them to H×W, whatever h is). Not thread-safe unless the backend says so."""

    name: str
    meta: ModelMeta

    def infer(self, batch: np.ndarray) -> np.ndarray: ...

    def close(self) -> None: ...
