"""``Segmenter``: one model, the whole per-frame chain for Python services.

    seg = Segmenter("model.onnx")            # or an engine, a name such as "demo", backend="tensorrt", crf=None, ...
    labels, probs = seg.segment(image_bgr)   # H×W labels, C×H×W probabilities

Stages, usable one by one (the overlapped pipeline in runtime/pipeline.py runs them in threads):
``infer(image) -> (logits C×h×w, Padding)`` → ``upsample(logits, padding) -> probs C×H×W`` →
``refine(image, probs) -> probs`` (dense CRF) → argmax. With the CRF off, ``labels(logits, padding)`` goes from
logits to labels directly.

Thread-safety: a Segmenter may be shared between threads. ``infer`` is serialized by an internal lock (TensorRT
execution contexts are not thread-safe); upsampling and the CRF hold no state and run concurrently (both release the
GIL). For the most throughput from several threads, create one Segmenter per thread.
"""
from __future__ import annotations

import logging
import os
import threading
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Mapping

import numpy as np

from runtime import upsample as _upsample
from runtime.backends import Backend, BackendError, open_backend
from runtime.backends.base import DeviceLogits
from runtime.cuda_util import gpu_available
from runtime.metadata import ModelMeta
from runtime.preprocess import Padding, preprocess, to_bgr8
from runtime.upsample_cuda import default_upsampler

if TYPE_CHECKING:
    import crf
    from crf import CrfConfig

log = logging.getLogger(__name__)

DEFAULT_CRF = "default"


class CrfUnavailable(RuntimeError):
    """The CRF was asked for but the ``crf`` package cannot do it."""


def crf_config(crf: str | Mapping[str, Any] | None, meta: ModelMeta, *, video: bool = False,
               iterations: int | None = None, scale: float | None = None, warm_start: bool = False,
               device: str = "auto") -> "CrfConfig | None":
    """The CRF settings in force, resolved once (``crf.resolve_crf``, the rule the C++ runtime runs too), or None
    when the CRF is off.

    ``crf``: None (off), a preset name (``"voc"``...), a dict of ``crf.refine`` keyword arguments (``preset`` and
    fields), or ``"default"``: the model's own settings (``meta.extra["crf"]``, e.g. tuned for the demo model) if it
    has any, else ``"voc"``. ``iterations`` overrides the preset's iteration count, ``scale`` the CRF's resolution.
    ``video``: the frames are a video's: unless iterations, a scale or warm start were asked for, the CRF runs
    ``crf.VIDEO_ITERATIONS`` iterations at ``crf.VIDEO_SCALE`` resolution (why: docs/crf.md). ``device``: auto, cpu
    or cuda. ValueError for an unknown preset, setting or value."""
    if crf is None:
        return None
    if isinstance(crf, str):
        preset, overrides = crf, {}
    elif isinstance(crf, Mapping):
        preset = str(crf.get("preset", "voc"))
        overrides = {k: v for k, v in crf.items() if k != "preset"}
    else:
        raise TypeError(f"crf must be None, a preset name or a dict, got {type(crf).__name__}")
    for key, v in overrides.items():
        if not isinstance(v, (int, float, np.integer, np.floating)) or (key != "half_rows" and isinstance(v, bool)):
            raise ValueError(f"bad CRF settings {dict(crf)}: {key} must be a number, got {v!r}")
    if iterations is not None and (isinstance(iterations, bool) or iterations < 0):
        raise ValueError(f"crf iterations must be ≥ 0, got {iterations}")
    crf_module = _load_crf()
    model_preset, model_overrides = meta.crf
    return crf_module.resolve_crf(preset, {k: float(v) for k, v in overrides.items()},
                                  -1 if iterations is None else int(iterations), 0.0 if scale is None else float(scale),
                                  warm_start, device, model_preset, model_overrides, video)


def crf_summary(config: "CrfConfig | None") -> dict[str, Any] | None:
    """``crf.refine``'s keyword arguments for ``config`` (the preset, then every field it sets), for run summaries."""
    if config is None:
        return None
    settings: dict[str, Any] = {"preset": config.preset, **config.overrides}
    if config.iterations >= 0:
        settings["iterations"] = config.iterations
    if config.scale > 0:
        settings["scale"] = float(str(np.float32(config.scale)))  # the number asked for (0.3), not float32's 0.30000001
    for key, kind in (("iterations", int), ("normalization", int), ("half_rows", bool)):
        if key in settings:
            settings[key] = kind(settings[key])
    return settings


def label_dtype(n_classes: int) -> type:
    return np.uint8 if n_classes <= 256 else np.int32


class Segmenter:
    """A model (a path, a name such as ``demo`` (:mod:`runtime.named`), or an open :class:`Backend`) with its
    preprocessing, upsampling and CRF.

    ``crf``: see :func:`crf_config`; ``crf_iterations`` and ``crf_scale`` override the preset's iteration count and
    the CRF's resolution (``crf.refine``'s ``scale``: 0.5 costs about 40 % of full resolution); ``warm_start``: in
    :meth:`stream`, each frame's CRF starts from the previous frame's result (when the sizes match); ``video``: the
    frames are a video's (the video CRF unless iterations, a scale or warm start are given); ``crf_device``: where
    the CRF runs (auto, cpu or cuda); the resolved settings are :attr:`crf` (a read-only ``crf.CrfConfig``, or None);
    ``upsample_device``: ``"cpu"``, ``"cuda"`` (NVRTC kernels) or ``"auto"`` (cuda with the TensorRT backend when the
    kernels load, else cpu); ``backend_options`` go to :func:`open_backend`."""

    def __init__(self, model: str | os.PathLike | Backend, backend: str = "auto",
                 crf: str | Mapping[str, Any] | None = DEFAULT_CRF, crf_iterations: int | None = None,
                 warm_start: bool = False, upsample_device: str = "auto", *, crf_scale: float | None = None,
                 video: bool = False, crf_device: str = "auto", **backend_options: Any) -> None:
        self.backend = model if isinstance(model, Backend) else open_backend(model, backend, **backend_options)
        self.meta: ModelMeta = self.backend.meta
        self.crf = crf_config(crf, self.meta, video=video, iterations=crf_iterations, scale=crf_scale,
                              warm_start=warm_start, device=crf_device)
        self.warm_start = warm_start
        self.upsample_device = _upsample_device(upsample_device, self.backend.name, self.backend.gpu)
        # Logits stay on the GPU between the network and the CUDA upsampling when the backend can keep them there.
        self.device_logits = self.upsample_device == "cuda" and self.backend.device_output
        self._infer_lock = threading.Lock()
        # Where the CRF runs (crf_device auto: the GPU when the upsampling runs there and the GPU CRF can), and why
        # an asked-for cuda falls back to the CPU ("" when it does not).
        self.crf_device, self.crf_device_fallback = "cpu", ""
        if self.crf is not None:
            self.crf_device, self.crf_device_fallback = _crf_device(self.crf.device, self.upsample_device)
        # Resolved once: the native parameters and this Segmenter's own cache of smoothness lattices (streams of other
        # sizes take their own: crf_cache()).
        self._crf_params = None if self.crf is None else self.crf.params()
        self._lattices = self.crf_cache()

    # -- stages ---------------------------------------------------------------------------------------------------
    def preprocess(self, image: np.ndarray) -> tuple[np.ndarray, Padding]:
        """Image (any of the layouts :func:`to_bgr8` accepts) → 1×3×H'×W' network input and its padding."""
        image = to_bgr8(image)
        return preprocess(image, self.meta, pad_to=self.backend.input_size(*image.shape[:2]))

    def infer(self, image: np.ndarray) -> tuple[np.ndarray, Padding]:
        """Preprocess and run the network: (C×h×w logits of the padded input, Padding)."""
        x, padding = self.preprocess(image)
        return self.infer_batch(x)[0], padding

    def infer_batch(self, x: np.ndarray) -> np.ndarray | DeviceLogits:
        """Run the network on a preprocessed batch: host logits, or a :class:`DeviceLogits` when
        :attr:`device_logits` (``upsample``/``labels`` take either)."""
        with self._infer_lock:
            return self.backend.infer_device(x) if self.device_logits else self.backend.infer(x)

    def upsample(self, logits: np.ndarray, padding: Padding) -> np.ndarray:
        """C×h×w logits → C×H×W probabilities of the real (unpadded) image: bilinear + softmax in one pass."""
        return _upsample.bilinear_softmax(logits, (padding.padded_height, padding.padded_width),
                                          self.meta.align_corners, crop=(padding.height, padding.width),
                                          device=self.upsample_device)

    def labels(self, logits: np.ndarray, padding: Padding) -> np.ndarray:
        """C×h×w logits → H×W labels directly (argmax of the upsampled logits), for when the CRF is off."""
        return _upsample.bilinear_labels(logits, (padding.padded_height, padding.padded_width),
                                         self.meta.align_corners, crop=(padding.height, padding.width),
                                         device=self.upsample_device)

    def refine(self, image: np.ndarray, probs: np.ndarray, init: np.ndarray | None = None,
               lattices: "crf.LatticeCache | None" = None) -> np.ndarray:
        """Dense CRF on C×H×W probabilities (identity when the CRF is off). ``init``: a previous result to start
        mean-field from (warm start; ignored when the frame size changed). ``lattices``: the stream's own cache of
        smoothness lattices (:meth:`crf_cache`; default: this Segmenter's)."""
        if self.crf is None:
            return probs
        import crf
        if init is not None and init.shape != probs.shape:
            init = None  # the frame size changed: start from this frame's unary
        return crf.refine(to_bgr8(image), probs, preset=self._crf_params, init=init,
                          lattice_cache=self._lattices if lattices is None else lattices, device=self.crf_device)

    def crf_cache(self) -> "crf.LatticeCache | None":
        """A new cache of smoothness lattices for one stream's frames (one image size), or None with the CRF off."""
        if self.crf is None:
            return None
        import crf
        return crf.LatticeCache(1)

    @staticmethod
    def argmax(probs: np.ndarray) -> np.ndarray:
        return probs.argmax(axis=0).astype(label_dtype(probs.shape[0]))

    # -- whole chain ----------------------------------------------------------------------------------------------
    def segment(self, image: np.ndarray, return_probs: bool = True,
                init: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        """Image → (H×W labels, C×H×W probabilities). With the CRF off and ``return_probs=False`` the probabilities
        are never computed (labels straight from the logits) and None is returned in their place."""
        image = to_bgr8(image)
        logits, padding = self.infer(image)
        if self.crf is None and not return_probs:
            return self.labels(logits, padding), None
        probs = self.refine(image, self.upsample(logits, padding), init=init)
        return self.argmax(probs), probs

    def stream(self, frames: Iterable[np.ndarray], return_probs: bool = True
               ) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
        """Segment frames one after the other (with warm start if enabled). For overlapped stages, latency figures
        and video sources/sinks use :class:`runtime.pipeline.Pipeline`."""
        previous: np.ndarray | None = None
        for frame in frames:
            init = previous if self.warm_start else None
            labels, probs = self.segment(frame, return_probs=return_probs or self.warm_start, init=init)
            previous = probs if probs is not None and (init is None or init.shape == probs.shape) else None
            yield labels, (probs if return_probs else None)

    def close(self) -> None:
        self.backend.close()

    def __enter__(self) -> "Segmenter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _upsample_device(requested: str, backend: str, device: int = 0) -> str:
    """Resolve ``auto``; an explicit ``cuda`` without a GPU is an error, ``auto`` falls back to the CPU (warning)."""
    if requested not in ("auto", "cpu", "cuda"):
        raise ValueError(f"upsample_device must be 'auto', 'cpu' or 'cuda', got {requested!r}")
    if requested == "cpu" or (requested == "auto" and backend != "tensorrt"):
        return "cpu"
    if not gpu_available():
        if requested == "cuda":
            raise ValueError("upsample_device='cuda' needs a CUDA GPU and driver; none found (use 'cpu')")
        return "cpu"
    try:
        default_upsampler(device)  # compiles (or loads from the cache) and loads the kernels now, not on the first frame
    except Exception as e:  # NVRTC/driver errors of many kinds
        if requested == "cuda":
            raise
        log.warning("CUDA upsampling unavailable (%s); upsampling on the CPU", e)
        return "cpu"
    return "cuda"


def _crf_device(device: str, upsample_device: str) -> tuple[str, str]:
    """The CRF's device and, when ``cuda`` was asked for and cannot run, why; ``auto`` is ``cuda`` when the
    upsampling runs there and the GPU CRF can."""
    import crf.gpu
    where, why = crf.gpu.resolve_device("cuda" if device == "auto" and upsample_device == "cuda" else device)
    return where, why if device == "cuda" else ""


def _load_crf() -> Any:
    try:
        import crf
        crf.resolve_crf, crf.refine  # noqa: B018 - the API this module uses
    except (ImportError, AttributeError) as e:
        raise CrfUnavailable(f"the dense CRF is not available ({e}); use crf=None / --no-crf") from None
    return crf


__all__ = ["BackendError", "CrfUnavailable", "Segmenter", "crf_config", "crf_summary", "label_dtype"]
