"""The contract every inference backend implements: preprocessed batch in, logits out, plus what callers need to
know to feed it (the input size for an image), why it was chosen, and whether it can keep its output on the GPU."""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import numpy as np

from runtime.errors import FrameError
from runtime.metadata import ModelMeta


class BackendError(FrameError, RuntimeError):
    """A backend could not load a model or run it; the message says why in one line. Raised by ``infer``, it is a
    :class:`FrameError`: the pipeline skips that frame."""


class BackendUnavailable(BackendError):
    """The backend's server or device is gone: every later frame would fail the same way, so a pipeline stops (not
    a frame error, although a :class:`BackendError`)."""


@dataclass(frozen=True)
class DeviceLogits:
    """N×C×h×w logits in GPU memory (what the CUDA upsampler reads), C-contiguous. Valid until the backend's next
    inference, or for as long as this object lives when ``owner`` holds the memory. ``logits[i]`` is the i-th C×h×w
    item of the batch."""

    pointer: int                         # CUDA device address
    shape: tuple[int, ...]               # N×C×h×w, or C×h×w for one item of a batch
    dtype: np.dtype
    device: int = 0                      # the GPU that holds it
    owner: Any = None                    # keeps the memory alive (e.g. a runtime.cuda_util.DeviceBuffer)

    def __getitem__(self, index: int) -> "DeviceLogits":
        n = self.shape[0]
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for {n} items")
        item = int(np.prod(self.shape[1:])) * np.dtype(self.dtype).itemsize
        return DeviceLogits(self.pointer + (index % n) * item, self.shape[1:], self.dtype, self.device, self.owner)


class Backend(ABC):
    """A loaded model. ``infer`` takes N×3×H×W float32 (already preprocessed, H and W from :meth:`input_size`) and
    returns N×C×h×w float32 logits at 1/stride (DeepLab's Caffe layout gives h = H/8 + 1: the runtime upsamples
    them to H×W, whatever h is). Not thread-safe unless the backend says so.

    Subclasses set ``name`` and ``meta``, implement :meth:`infer` and override the rest where they differ."""

    name: str
    meta: ModelMeta
    #: Why this backend runs the model (set by :func:`runtime.backends.open_backend`).
    reason: str = "given as an open backend"
    #: Whether :meth:`infer_device` can return logits that stay in GPU memory.
    device_output: bool = False
    #: The CUDA device the backend's GPU work runs on (where CUDA upsampling of its output belongs).
    gpu: int = 0
    #: The largest N :meth:`infer` takes (Triton's max_batch_size, an engine profile's max N); None: any.
    max_batch: int | None = None

    def input_size(self, height: int, width: int) -> tuple[int, int] | None:
        """The network input size (H, W) for an image of ``height``×``width``; None: the image padded to a multiple
        of the output stride (a network that takes any size). Engines answer from their optimization profile."""
        return None

    @abstractmethod
    def infer(self, batch: np.ndarray) -> np.ndarray:
        """N×3×H×W preprocessed input → N×C×h×w float32 logits in host memory."""

    def infer_device(self, batch: np.ndarray) -> DeviceLogits:
        """Like :meth:`infer`, with the logits left in GPU memory for the CUDA upsampler; only where
        :attr:`device_output` is True."""
        raise BackendError(f"the {self.name} backend returns its logits in host memory only (use infer)")

    def close(self) -> None:  # noqa: B027 - not abstract: a backend may hold nothing to release
        """Release the model; the backend is unusable afterwards."""
