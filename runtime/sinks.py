"""Outputs of the pipeline: an overlay video, overlay images, palette label PNGs. All writes are atomic: a file
appears under its final name only when complete (videos: written to a temporary file, renamed by ``close``, which the
pipeline calls at the end of the stream, on errors and on Ctrl-C)."""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
from PIL import Image

from runtime.atomic import atomic_path, temp_beside
from runtime.sources import Frame

log = logging.getLogger(__name__)

VIDEO_CODECS = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "MJPG"}


def voc_palette(n: int = 256) -> np.ndarray:
    """The PASCAL VOC colour map (n×3 uint8, RGB): class 0 black, 1 maroon, 2 green, ..., 255 cream."""
    palette = np.zeros((n, 3), np.uint8)
    for i in range(n):
        c, r, g, b = i, 0, 0, 0
        for bit in range(8):
            r |= ((c >> 0) & 1) << (7 - bit)
            g |= ((c >> 1) & 1) << (7 - bit)
            b |= ((c >> 2) & 1) << (7 - bit)
            c >>= 3
        palette[i] = (r, g, b)
    return palette


PALETTE = voc_palette()
_BGR_LUT = np.ascontiguousarray(PALETTE[:, ::-1]).reshape(256, 1, 3)


def colourize(labels: np.ndarray) -> np.ndarray:
    """H×W labels → H×W×3 BGR palette colours (labels above 255 wrap, as in an 8-bit palette)."""
    grey = labels if labels.dtype == np.uint8 else (labels & 255).astype(np.uint8)
    return cv2.LUT(cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR), _BGR_LUT)


def overlay(image_bgr: np.ndarray, labels: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Blend the palette colours of ``labels`` over the image (background, class 0, left as is)."""
    out = cv2.addWeighted(image_bgr, 1 - alpha, colourize(labels), alpha, 0)
    cv2.copyTo(image_bgr, (labels == 0).view(np.uint8), out)
    return out


def write_image_atomic(path: Path, write: Callable[[Path], object]) -> None:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then move it into place."""
    with atomic_path(path) as tmp:
        write(tmp)


class Sink:
    def write(self, frame: Frame, labels: np.ndarray) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass


class MaskSink(Sink):
    """One palette PNG per frame (``DIR/<frame name>.png``), pixel value = class index (VOC layout)."""

    def __init__(self, directory: str | os.PathLike) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.written = 0

    def write(self, frame: Frame, labels: np.ndarray) -> None:
        if labels.max(initial=0) > 255:
            image = Image.fromarray(labels.astype(np.int32), mode="I")  # > 256 classes: 32-bit grey PNG
        else:
            image = Image.fromarray(labels.astype(np.uint8), mode="P")
            image.putpalette(PALETTE.tobytes())
        write_image_atomic(self.directory / f"{frame.name}.png",
                           lambda p: image.save(p, format="PNG", compress_level=1))
        self.written += 1


class OverlayImageSink(Sink):
    """One overlay image per frame (``DIR/<frame name>.jpg``), for image and directory sources."""

    def __init__(self, directory: str | os.PathLike) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)

    def write(self, frame: Frame, labels: np.ndarray) -> None:
        out = overlay(frame.image, labels)
        path = self.directory / f"{frame.name}.jpg"

        def save(p: Path) -> None:
            if not cv2.imwrite(str(p), out):
                raise OSError(f"cannot write {path}")
        write_image_atomic(path, save)


class OverlayVideoSink(Sink):
    """An overlay video. Opened at the first frame (its size fixes the video's: later frames of another size are
    resized, and counted in ``.resized``); written to a temporary file next to ``path`` and renamed by ``close``."""

    def __init__(self, path: str | os.PathLike, fps: float | None = None) -> None:
        self.path = Path(path)
        if self.path.suffix.lower() not in VIDEO_CODECS:
            raise ValueError(f"unsupported video output {self.path.name}: use one of {', '.join(VIDEO_CODECS)}")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fps = fps or 25.0
        self.writer: cv2.VideoWriter | None = None
        self.tmp: Path | None = None
        self.size: tuple[int, int] | None = None
        self.frames = 0
        self.resized = 0

    def write(self, frame: Frame, labels: np.ndarray) -> None:
        out = overlay(frame.image, labels)
        if self.writer is None:
            self.size = (out.shape[1], out.shape[0])
            self.tmp = temp_beside(self.path)
            fourcc = cv2.VideoWriter_fourcc(*VIDEO_CODECS[self.path.suffix.lower()])
            self.writer = cv2.VideoWriter(str(self.tmp), cv2.CAP_FFMPEG, fourcc, self.fps, self.size)
            if not self.writer.isOpened():
                self.tmp.unlink(missing_ok=True)
                raise OSError(f"cannot open a video writer for {self.path}")
        if (out.shape[1], out.shape[0]) != self.size:
            out = cv2.resize(out, self.size, interpolation=cv2.INTER_NEAREST)
            self.resized += 1
        self.writer.write(out)
        self.frames += 1

    def close(self) -> None:
        """Finish the file and move it into place (no file at all when no frame was written)."""
        if self.writer is None:
            return
        self.writer.release()
        self.writer = None
        if self.tmp is not None:
            os.replace(self.tmp, self.path)
            self.tmp = None
        if self.resized:
            log.warning("%s: %d frame(s) of another size were resized to %dx%d", self.path, self.resized, *self.size)
