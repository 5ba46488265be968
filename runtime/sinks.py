"""Outputs of the pipeline: an overlay video, overlay images, palette label PNGs. All writes are atomic: a file
appears under its final name only when complete (videos: written to a temporary file, renamed by ``close``, which the
pipeline calls at the end of the stream, on errors and on Ctrl-C)."""
from __future__ import annotations

import logging
import os
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable, Sequence

import cv2
import numpy as np
from PIL import Image

from runtime.atomic import atomic_path, make_dirs, temp_beside
from runtime.palette import PALETTE, bgr_lut
from runtime.sources import Frame

log = logging.getLogger(__name__)

# OpenCV's codec per video suffix; the MP4 family gets H.264 (what browsers play) through PyAV when it is installed.
VIDEO_CODECS = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "MJPG"}
H264_SUFFIXES = (".mp4", ".m4v", ".mov")


_BGR_LUT = bgr_lut(PALETTE)


def colourize(labels: np.ndarray, palette: np.ndarray | None = None) -> np.ndarray:
    """H×W labels → H×W×3 BGR palette colours (labels above 255 wrap, as in an 8-bit palette); VOC's by default."""
    grey = labels if labels.dtype == np.uint8 else (labels & 255).astype(np.uint8)
    return cv2.LUT(cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR), _BGR_LUT if palette is None else bgr_lut(palette))


def overlay(image_bgr: np.ndarray, labels: np.ndarray, alpha: float = 0.5, palette: np.ndarray | None = None
            ) -> np.ndarray:
    """Blend the palette colours of ``labels`` over the image (background, class 0, left as is)."""
    out = cv2.addWeighted(image_bgr, 1 - alpha, colourize(labels, palette), alpha, 0)
    cv2.copyTo(image_bgr, (labels == 0).view(np.uint8), out)
    return out


def draw_legend(image_bgr: np.ndarray, labels: np.ndarray, class_names: Sequence[str],
                palette: np.ndarray | None = None) -> np.ndarray:
    """Draw, in the top-left corner, a colour swatch and the name of each class present in ``labels`` (background,
    class 0, left out), so that an overlay says what its colours mean."""
    present = [int(c) for c in np.unique(labels) if 0 < c < len(class_names)]
    row = 14
    for k, c in enumerate(present[: max(0, image_bgr.shape[0] // row - 1)]):
        y = 2 + k * row
        name = class_names[c]
        width = 16 + cv2.getTextSize(name, cv2.FONT_HERSHEY_SIMPLEX, 0.4, 1)[0][0]
        cv2.rectangle(image_bgr, (0, y - 2), (width + 4, y + row - 2), (0, 0, 0), cv2.FILLED)
        colour = tuple(int(v) for v in (PALETTE if palette is None else palette)[c & 255, ::-1])
        cv2.rectangle(image_bgr, (3, y + 1), (12, y + 10), colour, cv2.FILLED)
        cv2.putText(image_bgr, name, (16, y + 10), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
    return image_bgr


def labelled_overlay(image_bgr: np.ndarray, labels: np.ndarray, class_names: Sequence[str] | None,
                     palette: np.ndarray | None = None) -> np.ndarray:
    """:func:`overlay`, with the legend of :func:`draw_legend` when the class names are known."""
    out = overlay(image_bgr, labels, palette=palette)
    return draw_legend(out, labels, class_names, palette) if class_names else out


def write_image_atomic(path: Path, write: Callable[[Path], object]) -> None:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then move it into place."""
    with atomic_path(path) as tmp:
        write(tmp)


class Sink:
    def write(self, frame: Frame, labels: np.ndarray) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def describe(self) -> str:
        """What it has written, for the end-of-run line: ``out.mp4 (90 frames, H.264)``; "" for nothing."""
        raise NotImplementedError


class MaskSink(Sink):
    """One palette PNG per frame (``DIR/<frame name>.png``), pixel value = class index (VOC layout), coloured with
    ``palette`` (:func:`runtime.palette.palette_of`; default VOC's)."""

    def __init__(self, directory: str | os.PathLike, palette: np.ndarray | None = None) -> None:
        self.directory = make_dirs(directory)
        self.written = 0
        self.palette = PALETTE if palette is None else palette

    def write(self, frame: Frame, labels: np.ndarray) -> None:
        if labels.max(initial=0) > 255:
            image = Image.fromarray(labels.astype(np.int32), mode="I")  # > 256 classes: 32-bit grey PNG
        else:
            image = Image.fromarray(labels.astype(np.uint8), mode="P")
            image.putpalette(self.palette.tobytes())
        write_image_atomic(self.directory / f"{frame.name}.png",
                           lambda p: image.save(p, format="PNG", compress_level=1))
        self.written += 1

    def describe(self) -> str:
        return f"{self.directory}/ ({self.written} mask PNGs)"


class OverlayImageSink(Sink):
    """One overlay image per frame (``DIR/<frame name>.jpg``), for image and directory sources."""

    def __init__(self, directory: str | os.PathLike, class_names: Sequence[str] | None = None,
                 palette: np.ndarray | None = None) -> None:
        self.directory = make_dirs(directory)
        self.class_names = class_names
        self.palette = palette
        self.written = 0

    def write(self, frame: Frame, labels: np.ndarray) -> None:
        out = labelled_overlay(frame.image, labels, self.class_names, self.palette)
        path = self.directory / f"{frame.name}.jpg"

        def save(p: Path) -> None:
            if not cv2.imwrite(str(p), out):
                raise OSError(f"cannot write {path}")
        write_image_atomic(path, save)
        self.written += 1

    def describe(self) -> str:
        return f"{self.directory}/ ({self.written} overlay JPEGs)"


class _OpenCVWriter:
    """A video through OpenCV's FFmpeg backend (mp4v in MP4, MJPG in AVI/MKV)."""

    def __init__(self, path: Path, fps: float, size: tuple[int, int], fourcc: str) -> None:
        self.codec = fourcc
        self.writer = cv2.VideoWriter(str(path), cv2.CAP_FFMPEG, cv2.VideoWriter_fourcc(*fourcc), fps, size)
        if not self.writer.isOpened():
            raise OSError(f"cannot open a {fourcc} video writer for {path}")

    def write(self, image_bgr: np.ndarray) -> None:
        self.writer.write(image_bgr)

    def close(self) -> None:
        self.writer.release()


class _H264Writer:
    """H.264 (yuv420p, browser-playable, index at the front) through PyAV's FFmpeg. yuv420p needs even sides: an odd
    width or height gets one black column or row."""

    def __init__(self, path: Path, fps: float, size: tuple[int, int], av: Any) -> None:
        self.codec = "h264"
        self.av = av
        self.pad = (size[0] % 2, size[1] % 2)
        self.container = av.open(str(path), mode="w", format="mp4", options={"movflags": "+faststart"})
        try:
            self.stream = self.container.add_stream(_h264_encoder(av), rate=Fraction(fps).limit_denominator(1001))
            self.stream.width, self.stream.height = size[0] + self.pad[0], size[1] + self.pad[1]
            self.stream.pix_fmt = "yuv420p"
        except BaseException:
            self.container.close()
            raise

    def write(self, image_bgr: np.ndarray) -> None:
        if any(self.pad):
            image_bgr = cv2.copyMakeBorder(image_bgr, 0, self.pad[1], 0, self.pad[0], cv2.BORDER_CONSTANT)
        frame = self.av.VideoFrame.from_ndarray(np.ascontiguousarray(image_bgr), format="bgr24")
        self.container.mux(self.stream.encode(frame))

    def close(self) -> None:
        try:
            self.container.mux(self.stream.encode(None))  # flush the encoder's delayed frames
        finally:
            self.container.close()


def _h264_encoder(av: Any) -> str:
    """The first H.264 encoder this PyAV build has (libx264, else OpenH264)."""
    for name in ("libx264", "libopenh264", "h264"):
        try:
            av.codec.Codec(name, "w")
            return name
        except Exception:  # noqa: BLE001 - PyAV raises its own error classes for an unknown codec
            continue
    raise OSError("this PyAV build has no H.264 encoder")


def _pyav() -> Any | None:
    """PyAV when it is installed and can encode H.264, else None."""
    try:
        import av
    except ImportError:
        return None
    try:
        _h264_encoder(av)
    except OSError:
        return None
    return av


class OverlayVideoSink(Sink):
    """An overlay video. Opened at the first frame (its size fixes the video's: later frames of another size are
    resized, and counted in ``.resized``); written to a temporary file next to ``path`` and renamed by ``close``.

    MP4/M4V/MOV are H.264 through PyAV (``pip install av``) where it is installed, which browsers play; otherwise
    OpenCV's mp4v, with a warning. ``.codec`` says which was written."""

    def __init__(self, path: str | os.PathLike, fps: float | None = None,
                 class_names: Sequence[str] | None = None, palette: np.ndarray | None = None) -> None:
        self.path = Path(path)
        self.class_names = class_names
        self.palette = palette
        if self.path.suffix.lower() not in VIDEO_CODECS:
            raise ValueError(f"unsupported video output {self.path.name}: use one of {', '.join(VIDEO_CODECS)}")
        make_dirs(self.path.parent, self.path)
        self.fps = fps or 25.0
        self.writer: _OpenCVWriter | _H264Writer | None = None
        self.codec: str | None = None
        self.tmp: Path | None = None
        self.size: tuple[int, int] | None = None
        self.frames = 0
        self.resized = 0

    def _open(self, size: tuple[int, int]) -> None:
        suffix = self.path.suffix.lower()
        self.tmp = temp_beside(self.path)
        try:
            self.writer = self._h264(size) if suffix in H264_SUFFIXES else None
            if self.writer is None:
                self.writer = _OpenCVWriter(self.tmp, self.fps, size, VIDEO_CODECS[suffix])
        except BaseException:
            self.tmp.unlink(missing_ok=True)
            self.tmp = None
            raise
        self.codec = self.writer.codec
        self.size = size

    def _h264(self, size: tuple[int, int]) -> _H264Writer | None:
        """The H.264 writer, or None (with a warning) when PyAV is missing or its encoder does not open."""
        av = _pyav()
        if av is None:
            log.warning("%s: writing mp4v, which browsers do not play; `pip install av` writes H.264", self.path)
            return None
        try:
            return _H264Writer(self.tmp, self.fps, size, av)
        except Exception as e:  # noqa: BLE001 - PyAV's FFmpeg errors: mp4v still gives a video
            log.warning("%s: writing mp4v, which browsers do not play: PyAV's H.264 encoder failed (%s)", self.path, e)
            return None

    def write(self, frame: Frame, labels: np.ndarray) -> None:
        out = labelled_overlay(frame.image, labels, self.class_names, self.palette)
        if self.writer is None:
            self._open((out.shape[1], out.shape[0]))
        if (out.shape[1], out.shape[0]) != self.size:
            out = cv2.resize(out, self.size, interpolation=cv2.INTER_NEAREST)
            self.resized += 1
        self.writer.write(out)
        self.frames += 1

    def close(self) -> None:
        """Finish the file and move it into place (no file at all when no frame was written)."""
        if self.writer is None:
            return
        writer, self.writer = self.writer, None
        try:
            writer.close()
        except KeyboardInterrupt:  # the container was still finalized: keep the frames written so far
            self._move_into_place()
            raise
        except BaseException:
            if self.tmp is not None:
                self.tmp.unlink(missing_ok=True)
                self.tmp = None
            raise
        self._move_into_place()
        if self.resized:
            log.warning("%s: %d frame(s) of another size were resized to %dx%d", self.path, self.resized, *self.size)

    def describe(self) -> str:
        if not self.frames:
            return ""  # no frame: no file
        codec = {"h264": "H.264", "mp4v": "mp4v", "MJPG": "MJPEG"}.get(self.codec or "", self.codec)
        return f"{self.path} ({self.frames} frames, {codec})"

    def _move_into_place(self) -> None:
        if self.tmp is not None:
            os.replace(self.tmp, self.path)
            self.tmp = None
