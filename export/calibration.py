"""Calibration data for INT8: a directory of images, or a Python file defining ``load_data()`` (Polygraphy's
convention) that yields input dicts ``{input_name: N×3×H×W float32}``.

Images (jpg/png/bmp, any size) are preprocessed by ``runtime.preprocess.preprocess``, the one copy the runtime uses, so
calibration sees exactly what inference will see. A fingerprint of the data keys the calibration cache.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import cv2
import numpy as np

from runtime.atomic import atomic_write_bytes, atomic_write_text
from runtime.metadata import ModelMeta
from runtime.preprocess import ImageError, preprocess
from runtime.image_io import IMAGE_SUFFIXES, read_image



class CalibrationError(ValueError):
    """Calibration data that cannot be used; the message says why."""


def list_images(directory: str | Path) -> list[Path]:
    """The calibration images in a directory (recursively), sorted; an error when there are none."""
    d = Path(directory)
    if not d.is_dir():
        raise CalibrationError(f"calibration directory {d} does not exist")
    images = sorted(p for p in d.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        raise CalibrationError(f"no calibration images ({', '.join(IMAGE_SUFFIXES)}) in {d}")
    return images


def load_data_function(py_file: str | Path) -> Callable[[], Iterable[dict[str, np.ndarray]]]:
    """Import a Python file and return its ``load_data`` function (the Polygraphy data-loader convention)."""
    path = Path(py_file)
    spec = importlib.util.spec_from_file_location(f"_calibration_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise CalibrationError(f"cannot import calibration script {path}")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as e:  # the user's script: report it as one line
        raise CalibrationError(f"calibration script {path} failed to import: {type(e).__name__}: {e}") from e
    fn = getattr(module, "load_data", None)
    if not callable(fn):
        raise CalibrationError(f"calibration script {path} defines no load_data() function")
    return fn


def _check_input(item: Any, meta: ModelMeta, index: int) -> np.ndarray:
    if not isinstance(item, dict) or meta.input_name not in item:
        raise CalibrationError(f"load_data() item {index} must be a dict with key {meta.input_name!r}")
    x = np.asarray(item[meta.input_name])
    if x.ndim != 4 or x.shape[1] != 3:
        raise CalibrationError(f"load_data() item {index}: {meta.input_name!r} must be N×3×H×W, got {x.shape}")
    if x.shape[2] % meta.output_stride or x.shape[3] % meta.output_stride:
        raise CalibrationError(f"load_data() item {index}: H and W must be multiples of {meta.output_stride}, "
                               f"got {x.shape}")
    if not np.isfinite(x).all():
        raise CalibrationError(f"load_data() item {index} has NaN or infinite values")
    return np.ascontiguousarray(x, dtype=np.float32)


@dataclass
class CalibrationSource:
    """Where calibration inputs come from: ``images`` (paths) or ``script`` (a load_data() file)."""

    path: Path
    images: list[Path] = field(default_factory=list)
    script: bool = False

    def fingerprint(self) -> str:
        """SHA-256 over the data (image names and bytes, or the script's text): keys the calibration cache."""
        h = hashlib.sha256()
        if self.script:
            h.update(b"script\0" + self.path.read_bytes())
        for p in self.images:
            h.update(p.relative_to(self.path).as_posix().encode() + b"\0")
            h.update(hashlib.sha256(p.read_bytes()).digest())
        return h.hexdigest()

    def __len__(self) -> int:
        return len(self.images)

    def inputs(self, meta: ModelMeta) -> Iterator[dict[str, np.ndarray]]:
        """Yield network input dicts, one per image (or per load_data() item)."""
        if self.script:
            for i, item in enumerate(load_data_function(self.path)()):
                yield {meta.input_name: _check_input(item, meta, i)}
            return
        for p in self.images:
            yield {meta.input_name: preprocess(_read_image(p), meta)[0]}


def _read_image(path: Path) -> np.ndarray:
    try:
        return read_image(path)
    except ImageError as e:
        raise CalibrationError(f"calibration image: {e}") from None


def open_calibration(path: str | Path, max_images: int | None = None) -> CalibrationSource:
    """A directory of images or a ``.py`` file defining load_data(); ``max_images`` keeps the first N images."""
    p = Path(path)
    if max_images is not None and max_images < 1:
        raise CalibrationError(f"--max-images must be ≥ 1, got {max_images}")
    if p.is_file() and p.suffix == ".py":
        return CalibrationSource(p, script=True)
    if p.is_file():
        raise CalibrationError(f"calibration data must be an image directory or a .py file defining load_data(), "
                               f"got {p}")
    return CalibrationSource(p, images=list_images(p)[:max_images])


class OrtCalibrationReader:
    """onnxruntime's ``CalibrationDataReader`` protocol over a :class:`CalibrationSource`, with a progress bar.

    Supports ``set_range`` so onnxruntime can calibrate one input at a time (histogram calibrators otherwise hold every
    activation of every image in memory). Script sources are materialized once (their length must be known)."""

    def __init__(self, source: CalibrationSource, meta: ModelMeta, progress: bool = True):
        from tqdm import tqdm

        self._items: list[dict[str, np.ndarray]] | None = None
        self._iter = source.inputs(meta)
        n = len(source)
        if source.script:
            self._items = list(self._iter)
            if not self._items:
                raise CalibrationError(f"load_data() in {source.path} yielded no inputs")
            n = len(self._items)
            self._iter = iter(self._items)
        self._n = n
        self._remaining = n
        self.count = 0  # inputs served so far
        self._bar = tqdm(total=n, desc="calibrating", unit="img", disable=None if progress else True, leave=False)

    def __len__(self) -> int:
        return self._n

    def set_range(self, start_index: int, end_index: int) -> None:
        self._remaining = end_index - start_index

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._remaining <= 0:
            return None
        item = next(self._iter, None)
        if item is None:
            self._bar.close()
            return None
        self._remaining -= 1
        self.count += 1
        self._bar.update(1)
        if self.count >= self._n:
            self._bar.close()
        return item


def fit_within(height: int, width: int, max_height: int, max_width: int) -> tuple[int, int]:
    """The size of an image scaled down (aspect kept) to fit in max_height × max_width; unchanged if it fits."""
    scale = min(1.0, max_height / height, max_width / width)
    return max(1, int(height * scale)), max(1, int(width * scale))


def fixed_shape_batches(source: CalibrationSource, meta: ModelMeta, shape: tuple[int, int, int, int]
                        ) -> Iterator[np.ndarray]:
    """N×3×H×W batches of one fixed shape (TensorRT's implicit calibrators calibrate at one profile shape): each image
    is scaled down to fit H×W if larger, then preprocessed and padded to H×W by the runtime's ``preprocess``. A last
    incomplete batch is dropped. Script sources must already yield that shape."""
    n, _, h, w = shape
    batch: list[np.ndarray] = []
    if source.script:
        for i, item in enumerate(load_data_function(source.path)()):
            x = _check_input(item, meta, i)
            if x.shape[1:] != (3, h, w):
                raise CalibrationError(f"load_data() item {i} has shape {x.shape}; implicit calibration needs "
                                       f"N×3×{h}×{w} (the --opt-shape)")
            batch.extend(x)
            while len(batch) >= n:
                yield np.stack(batch[:n])
                batch = batch[n:]
        return
    for p in source.images:
        image = _read_image(p)
        fh, fw = fit_within(image.shape[0], image.shape[1], h, w)
        if (fh, fw) != image.shape[:2]:
            image = cv2.resize(image, (fw, fh), interpolation=cv2.INTER_AREA)
        batch.append(preprocess(image, meta, pad_to=(h, w))[0][0])
        if len(batch) == n:
            yield np.stack(batch)
            batch = []


# How fixed_shape_batches turns an image into a calibration input; part of the implicit-calibration cache key, so a
# change here must change this text.
FIXED_SHAPE_PREPROCESSING = "fit_within INTER_AREA, runtime.preprocess, zero pad to the shape, last partial batch dropped"
CACHE_KEY_SUFFIX = ".key.json"


def implicit_cache_key(source: CalibrationSource, meta: ModelMeta, shape: tuple[int, ...], onnx_sha256: str,
                       calibrator: str, tensorrt_version: str) -> dict[str, Any]:
    """What a TensorRT implicit-calibration cache depends on: the model (its ONNX's SHA-256), the data (its
    fingerprint), how the data becomes inputs (preprocessing and the calibration shape), the calibrator and the
    TensorRT version that wrote it."""
    return {
        "onnx_sha256": onnx_sha256,
        "data_sha256": source.fingerprint(),
        "preprocessing": {"method": FIXED_SHAPE_PREPROCESSING, "channel_order": meta.channel_order,
                          "mean": list(meta.mean), "scale": list(meta.scale), "output_stride": meta.output_stride},
        "shape": [int(d) for d in shape],
        "calibrator": calibrator,
        "tensorrt_version": tensorrt_version,
    }


class CalibrationCache:
    """A TensorRT calibration cache file that is only read back for the key it was written under.

    The cache keeps TensorRT's own format (trtexec reads it too); the key lives beside it in ``<cache>.key.json``. A
    cache without a key, or with another key, is ignored and replaced after calibrating again."""

    def __init__(self, path: str | Path, key: dict[str, Any]) -> None:
        self.path = Path(path)
        self.key_path = self.path.with_name(self.path.name + CACHE_KEY_SUFFIX)
        self.key = key

    def stored_key(self) -> dict[str, Any] | None:
        try:
            stored = json.loads(self.key_path.read_text())
        except (OSError, ValueError):
            return None
        return stored if isinstance(stored, dict) else None

    def mismatch(self) -> str | None:
        """Why an existing cache file cannot be reused (None: it can, or there is none)."""
        if not self.path.is_file():
            return None
        stored = self.stored_key()
        if stored is None:
            return f"calibration cache {self.path} has no key file {self.key_path.name}"
        differ = sorted(k for k in self.key.keys() | stored.keys() if self.key.get(k) != stored.get(k))
        if differ:
            return f"calibration cache {self.path} was made with another {', '.join(differ)}"
        return None

    def read(self) -> bytes | None:
        """The cache's bytes when it was written for this key, else None (TensorRT then calibrates)."""
        if not self.path.is_file() or self.mismatch() is not None:
            return None
        return self.path.read_bytes()

    def write(self, data: bytes) -> None:
        """Write the cache and then its key, each atomically; the old key goes first, so a crash in between leaves a
        cache without a key (ignored), never a cache under a key it was not made for."""
        self.key_path.unlink(missing_ok=True)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(self.path, data)
        atomic_write_text(self.key_path, json.dumps(self.key, indent=2, sort_keys=True) + "\n")
