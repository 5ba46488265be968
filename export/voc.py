"""PASCAL VOC segmentation layout: read and write.

``DIR/JPEGImages/<id>.jpg``, ``DIR/SegmentationClass/<id>.png`` (palette PNG whose pixel values are class indices,
255 = ignore), ``DIR/ImageSets/Segmentation/{train,val}.txt`` (one id per line), and optionally ``DIR/classes.txt``
(one class name per line). Images are returned as BGR uint8 (OpenCV's order), labels as uint8 H×W.
"""
from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from runtime import image_io
from runtime.atomic import atomic_path, make_dirs
from runtime.preprocess import ImageError
from runtime.palette import voc_palette

IGNORE = 255
IMAGE_DIR = "JPEGImages"
LABEL_DIR = "SegmentationClass"
SPLIT_DIR = os.path.join("ImageSets", "Segmentation")
CLASSES_FILE = "classes.txt"


class DatasetError(ValueError):
    """A dataset that does not follow the VOC layout; the message names the file and what is wrong."""


_PALETTE = voc_palette()


@contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[str]:
    """Yield a temporary path next to ``path`` (its directory created if missing); renamed into place on success,
    removed on any error, so ``path`` is never half-written."""
    make_dirs(Path(path).parent, path)
    with atomic_path(path) as tmp:
        yield str(tmp)


def write_label(path: str | os.PathLike, labels: np.ndarray) -> None:
    """Save H×W uint8 class indices as a VOC palette PNG (atomically)."""
    labels = np.asarray(labels)
    if labels.ndim != 2 or labels.dtype != np.uint8:
        raise ValueError(f"labels must be H×W uint8, got {labels.shape} {labels.dtype}")
    img = Image.fromarray(labels, mode="P")
    img.putpalette(_PALETTE.ravel().tolist())
    with atomic_output(path) as tmp:
        img.save(tmp, format="PNG")


def read_label(path: str | os.PathLike, colours: np.ndarray | None = None) -> np.ndarray:
    """Read a VOC label PNG: a palette (P) PNG with the VOC colour map (or ``colours``, 256×3 RGB: a model's palette,
    e.g. Cityscapes'), or a grayscale (L) PNG of indices."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"missing label file: {path}")
    try:
        with Image.open(path) as img:
            img.load()
            mode = img.mode
            palette = img.getpalette() if mode == "P" else None
            labels = np.array(img)
    except (OSError, SyntaxError) as e:
        raise DatasetError(f"cannot read label file {path}: {e}") from None
    if mode not in ("P", "L"):
        raise DatasetError(f"label file {path} is a {mode} image; VOC labels are palette (P) or grayscale (L) PNGs "
                           "of class indices, not colour renderings")
    if palette is not None:
        used = np.unique(labels)
        pal = np.zeros((256, 3), np.uint8)
        entries = np.asarray(palette, np.uint8).reshape(-1, 3)[:256]
        pal[: len(entries)] = entries
        want = _PALETTE if colours is None else colours
        bad = [int(i) for i in used if not np.array_equal(pal[i], want[i])]
        if bad:
            which = "the VOC colour map" if colours is None else "the model's colour map"
            raise DatasetError(f"label file {path} has a palette that is not {which} (index {bad[0]} is "
                               f"{tuple(int(c) for c in pal[bad[0]])}, expected {tuple(int(c) for c in want[bad[0]])})")
    return labels.astype(np.uint8, copy=False)


def write_image(path: str | os.PathLike, image_bgr: np.ndarray, quality: int = 92) -> None:
    """Save a BGR uint8 image as JPEG (atomically)."""
    with atomic_output(path) as tmp:
        if not cv2.imwrite(tmp, image_bgr, [cv2.IMWRITE_JPEG_QUALITY, quality]):
            raise OSError(f"could not write {path}")


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image as BGR uint8 H×W×3 with the runtime's decoder; DatasetError when missing or undecodable."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"missing image file: {path}")
    try:
        return image_io.read_image(path)
    except ImageError as e:
        raise DatasetError(str(e)) from None


def write_split(root: str | os.PathLike, split: str, ids: Sequence[str]) -> None:
    """Write ``ImageSets/Segmentation/<split>.txt``."""
    text = "".join(f"{i}\n" for i in ids)
    with atomic_output(Path(root) / SPLIT_DIR / f"{split}.txt") as tmp:
        Path(tmp).write_text(text)


def write_classes(root: str | os.PathLike, class_names: Sequence[str]) -> None:
    """Write ``classes.txt`` (one name per line)."""
    text = "".join(f"{c}\n" for c in class_names)
    with atomic_output(Path(root) / CLASSES_FILE) as tmp:
        Path(tmp).write_text(text)


def read_classes(path: str | os.PathLike) -> list[str]:
    """Read a class-names file: one name per line, blank lines ignored."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"missing class-names file: {path}")
    names = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if not names:
        raise DatasetError(f"class-names file {path} is empty")
    return names


class VOCDataset:
    """The images and labels of one split of a VOC-layout directory."""

    def __init__(self, root: str | os.PathLike, split: str = "val", max_images: int | None = None) -> None:
        """``max_images``: keep only the first N ids of the split (at least one)."""
        self.root = Path(root)
        if not self.root.is_dir():
            raise DatasetError(f"dataset directory not found: {self.root}")
        list_file = self.root / SPLIT_DIR / f"{split}.txt"
        if not list_file.is_file():
            raise DatasetError(f"missing split list {list_file} (VOC layout: {SPLIT_DIR}/{split}.txt)")
        self.split = split
        self.ids = [line.strip() for line in list_file.read_text().splitlines() if line.strip()]
        if not self.ids:
            raise DatasetError(f"split list {list_file} is empty")
        if max_images is not None:
            self.ids = self.ids[: max(1, max_images)]
        self.colours: np.ndarray | None = None  # the label PNGs' palette (None: VOC's); eval sets the model's

    @property
    def class_names(self) -> list[str] | None:
        """The names in ``classes.txt``, or None when the dataset has none."""
        path = self.root / CLASSES_FILE
        return read_classes(path) if path.is_file() else None

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """(BGR uint8 image, uint8 labels) of the ``index``-th id; sizes must agree."""
        id_ = self.ids[index]
        image = read_image(self.root / IMAGE_DIR / f"{id_}.jpg")
        labels = read_label(self.root / LABEL_DIR / f"{id_}.png", self.colours)
        if image.shape[:2] != labels.shape:
            raise DatasetError(f"image and label sizes differ for {id_}: image {image.shape[1]}×{image.shape[0]}, "
                               f"label {labels.shape[1]}×{labels.shape[0]}")
        return image, labels

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for i in range(len(self)):
            yield self[i]
