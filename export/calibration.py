"""Calibration data for INT8: a directory of images, or a Python file defining ``load_data()`` (Polygraphy's
convention) that yields input dicts ``{input_name: N×3×H×W float32}``.

Images (jpg/png/bmp, any size) are preprocessed by ``runtime.preprocess.preprocess``, the one copy the runtime uses, so
calibration sees exactly what inference will see. A fingerprint of the data keys the calibration cache.
"""
from __future__ import annotations

import hashlib
import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import cv2
import numpy as np

from runtime.metadata import ModelMeta
from runtime.preprocess import ImageError, preprocess
from runtime.sources import IMAGE_SUFFIXES, read_image



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
        self._bar = tqdm(total=n, desc="calibrating", unit="img", disable=not progress, leave=False)

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
