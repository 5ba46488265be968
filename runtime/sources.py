"""Frame sources for the pipeline: video files, cameras, network streams (RTSP/HTTP/...), images, directories, globs.

``open_source(spec)`` picks the kind from the spec. Every source yields :class:`Frame` objects (BGR uint8, whatever the
file held: grayscale, RGBA and 16-bit images are converted) and counts what it could not decode in ``.skipped``
instead of stopping; ``.notes`` says what went wrong, in one line each. A source that disappears mid-stream (a dropped
connection, a truncated file) ends the iteration cleanly.
"""
from __future__ import annotations

import glob
import logging
import os
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from runtime import named
from runtime.image_io import IMAGE_SUFFIXES, read_image
from runtime.preprocess import ImageError, to_bgr8

log = logging.getLogger(__name__)

URL_SCHEMES = ("rtsp", "rtsps", "rtmp", "http", "https", "udp", "tcp", "srt")
# Consecutive unreadable frames after which a video is taken to have ended (files: a truncated tail; live: gone).
MAX_CONSECUTIVE_FAILURES = 25
NETWORK_TIMEOUT_MS = 10000


class SourceError(RuntimeError):
    """The source cannot be opened at all (missing, empty, not a video/image)."""


@dataclass
class Frame:
    index: int            # position in the stream, counting skipped frames
    name: str             # output file stem: the image's own stem, or a zero-padded frame number
    image: np.ndarray     # H×W×3 uint8 BGR
    decode_s: float = 0.0  # time spent decoding it
    captured: float | None = None  # time.perf_counter() when it was captured, where the source knows (GStreamer)


class Source:
    """Base: iterate for frames; ``fps`` (None when unknown), ``total`` (expected frames or None), ``skipped``."""

    kind = "source"
    dropped = 0  # frames the source itself discarded for newer ones (GStreamer's appsink)

    def __init__(self, spec: str) -> None:
        self.spec = spec
        self.fps: float | None = None
        self.total: int | None = None
        self.skipped = 0
        self.notes: list[str] = []

    def __iter__(self) -> Iterator[Frame]:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def _note(self, message: str) -> None:
        log.warning("%s", message)
        self.notes.append(message)


class VideoSource(Source):
    """A video file, a camera index or a network URL, decoded by OpenCV's FFmpeg backend."""

    def __init__(self, spec: str, kind: str, timeout_s: float | None = None) -> None:
        super().__init__(spec)
        self.kind = kind
        params: list[int] = []
        if kind == "stream":
            timeout_ms = NETWORK_TIMEOUT_MS if timeout_s is None else max(1, int(timeout_s * 1000))
            params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, timeout_ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, timeout_ms]
        target: int | str = int(spec) if spec.isdigit() else spec
        api = cv2.CAP_ANY if kind == "camera" else cv2.CAP_FFMPEG
        self.capture = cv2.VideoCapture(target, api, params)
        if not self.capture.isOpened():
            what = {"camera": "camera", "stream": "stream"}.get(kind, "video (not a video file, or damaged beyond use)")
            raise SourceError(f"cannot open {what}: {spec}")
        fps = self.capture.get(cv2.CAP_PROP_FPS)
        self.fps = fps if 0 < fps < 1000 else None
        count = int(self.capture.get(cv2.CAP_PROP_FRAME_COUNT))
        self.total = count if kind == "file" and count > 0 else None
        self.stem = Path(spec).stem if kind == "file" else "frame"

    def __iter__(self) -> Iterator[Frame]:
        index = failures = decoded = 0
        while True:
            t = time.perf_counter()
            ok, image = self.capture.read()
            dt = time.perf_counter() - t
            if ok and image is not None and image.size:
                if failures:
                    self.skipped += failures
                    self._note(f"{self.spec}: skipped {failures} undecodable frame(s) before frame {index}")
                failures = 0
                decoded += 1
                yield Frame(index, f"{index:06d}", to_bgr8(image), dt)
                index += 1
                continue
            if self.total is not None and index >= self.total:
                break  # the normal end of a file
            failures += 1
            if failures > MAX_CONSECUTIVE_FAILURES:
                break
            index += 1
            if self.kind == "file":  # step over the damaged frame
                self.capture.set(cv2.CAP_PROP_POS_FRAMES, index)
        if self.kind == "file" and self.total is not None and index < self.total:
            self._note(f"{self.spec}: the container claims {self.total} frames, {decoded} could be decoded "
                       "(truncated or damaged file)")
        elif self.kind != "file" and failures:
            self._note(f"{self.spec}: the {self.kind} stopped delivering frames after {decoded}")

    def close(self) -> None:
        self.capture.release()


class ImageSource(Source):
    """One image, a directory of images (sorted by name) or a glob."""

    kind = "images"

    def __init__(self, spec: str, paths: list[Path]) -> None:
        super().__init__(spec)
        if not paths:
            raise SourceError(f"no images found: {spec}")
        self.paths = paths
        self.total = len(paths)

    def __iter__(self) -> Iterator[Frame]:
        for index, path in enumerate(self.paths):
            t = time.perf_counter()
            try:
                image = read_image(path)
            except (ImageError, OSError) as e:
                self.skipped += 1
                self._note(str(e))
                continue
            yield Frame(index, path.stem, image, time.perf_counter() - t)


def is_url(spec: str) -> bool:
    return re.match(rf"^({'|'.join(URL_SCHEMES)})://", spec, re.IGNORECASE) is not None


def source_kind(spec: str | os.PathLike) -> str:
    """The kind of source ``spec`` names, without opening it: ``camera`` (an index or a GStreamer camera URI),
    ``stream`` (a URL), ``pipeline`` (``gst:PIPELINE``), ``images`` (an image, a directory or a glob) or ``file`` (a
    video file; also a path that does not exist, which :func:`open_source` reports)."""
    from runtime import gst_source

    spec = str(named.resolve(spec, "video", SourceError))
    if spec.isdigit():
        return "camera"
    if is_url(spec):
        return "stream"
    if gst_source.is_gst_uri(spec):
        return "pipeline" if spec.startswith("gst:") else "camera"
    path = Path(spec)
    if path.is_dir() or (any(ch in spec for ch in "*?[") and not path.exists()):
        return "images"
    return "images" if path.suffix.lower() in IMAGE_SUFFIXES and path.exists() else "file"


def open_source(spec: str | os.PathLike, timeout_s: float | None = None, decoder: str = "auto",
                stop: threading.Event | None = None) -> Source:
    """A name such as ``demo`` (:mod:`runtime.named`), a camera index (``0``), a GStreamer URI (``csi://0``,
    ``v4l2:///dev/video0``, ``/dev/video0``, ``gst:PIPELINE``), a URL, an image, a directory, a glob, or a video file
    (the kind: :func:`source_kind`). ``timeout_s``: how long a network source may take to connect or to deliver the
    next frame (default 10 s); ``decoder``: ``auto``, ``gstreamer`` or ``ffmpeg`` (:mod:`runtime.gst_source`);
    ``stop``: ends a GStreamer source's iteration while it waits for a frame."""
    from runtime import gst_source

    spec = str(named.resolve(spec, "video", SourceError))
    kind = source_kind(spec)
    is_video_file = kind == "file" and Path(spec).is_file()
    if gst_source.wants_gstreamer(spec, decoder, is_video_file):
        return gst_source.open_gstreamer(spec, timeout_s, stop, is_file=is_video_file)
    if spec.startswith(("csi://", "gst:")):
        raise SourceError(f"{spec}: only GStreamer opens it, not --decoder {decoder}")
    if gst_source.is_gst_uri(spec):  # a V4L2 camera with --decoder ffmpeg: OpenCV's V4L2 backend, without options
        return VideoSource(spec.removeprefix("v4l2://").split("?")[0], "camera")
    if kind in ("camera", "stream"):
        return VideoSource(spec, kind, timeout_s)
    path = Path(spec)
    if path.is_dir():
        return ImageSource(spec, sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES))
    if kind == "images" and not path.exists():
        return ImageSource(spec, sorted(Path(p) for p in glob.glob(spec, recursive=True)
                                        if Path(p).suffix.lower() in IMAGE_SUFFIXES))
    if not path.exists():
        raise SourceError(f"source not found: {spec}")
    if path.stat().st_size == 0:
        raise SourceError(f"source file is empty: {spec}")
    if kind == "images":
        return ImageSource(spec, [path])
    return VideoSource(spec, "file")
