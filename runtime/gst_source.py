"""GStreamer sources: CSI and USB cameras, RTSP with the best available decoder, and ``gst:`` pipelines.

The pipeline strings come from one builder, the C++ ``deeplab::gst_pipeline`` (``runtime._gst_pipeline``), which the
C++ example uses too: a pure function of the URI and of the set of GStreamer elements present. Two ways in:

* PyGObject (``gi``): the pipeline runs here, frames are pulled from its appsink; each frame carries its capture time
  (the buffer's timestamp mapped to the pipeline clock, for live pipelines), and frames the appsink dropped because a
  newer one arrived are counted;
* OpenCV's GStreamer backend (``cv2.CAP_GSTREAMER``) when the installed cv2 was built with it (JetPack's is) and gi is
  absent: the same string, read like any OpenCV capture (no capture times or drop counts).

``--decoder auto`` opens ``csi://``, ``v4l2://``, ``/dev/videoN`` and ``gst:`` through GStreamer, ``rtsp://`` through
GStreamer where it is available (else FFmpeg), files and HTTP through FFmpeg; ``gstreamer`` also opens files through
GStreamer; ``ffmpeg`` keeps OpenCV's FFmpeg (and V4L2 for ``/dev/videoN``).
"""
from __future__ import annotations

import functools
import logging
import re
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import cv2
import numpy as np

from runtime import _gst_pipeline
from runtime.preprocess import to_bgr8
from runtime.sources import Frame, Source, SourceError, VideoSource

log = logging.getLogger(__name__)

DECODERS = ("auto", "gstreamer", "ffmpeg")
PACKAGES = ("python3-gi gir1.2-gstreamer-1.0 gir1.2-gst-plugins-base-1.0 gstreamer1.0-plugins-base gstreamer1.0-plugins-good "
            "gstreamer1.0-plugins-bad gstreamer1.0-libav")
MISSING = (f"GStreamer is not available: install {PACKAGES} (Debian/Ubuntu; JetPack has them) and make gi importable "
           "in the venv (pip install -e '.[gstreamer]' with libgirepository1.0-dev libcairo2-dev, or a venv made with "
           "--system-site-packages)")
PULL_S = 0.1  # how often a waiting reader looks at the bus and at its stop event


def is_gst_uri(spec: str) -> bool:
    """``csi://``, ``v4l2://``, ``/dev/videoN`` or ``gst:``: sources only GStreamer opens (``/dev/videoN``: or V4L2)."""
    return _gst_pipeline.is_gst_uri(spec)


def is_live_uri(spec: str) -> bool:
    """Cameras and RTSP streams: the latest frame only, reconnected when they fail."""
    return _gst_pipeline.is_live_uri(spec)


def default_name(spec: str) -> str | None:
    """A stream name for a GStreamer URI (``csi0``, ``video0``, ``gst``), None for anything else."""
    if spec.startswith("csi://"):
        return "csi" + re.sub(r"\D", "", spec.split("?")[0])
    if spec.startswith("gst:"):
        return "gst"
    if is_gst_uri(spec):
        return Path(spec.split("?")[0]).name
    return None


@functools.cache
def gst() -> Any:
    """The initialised ``Gst`` module of PyGObject, or None when gi or GStreamer's introspection data is absent."""
    try:
        import gi
        gi.require_version("Gst", "1.0")
        gi.require_version("GstApp", "1.0")
        from gi.repository import Gst, GstApp  # noqa: F401 - GstApp gives the appsink its pull methods
    except (ImportError, ValueError):
        return None
    Gst.init(None)
    return Gst


@functools.cache
def opencv_has_gstreamer() -> bool:
    """Whether the installed cv2 was built with its GStreamer backend."""
    return re.search(r"GStreamer:\s+YES", cv2.getBuildInformation()) is not None


def available() -> bool:
    return gst() is not None or opencv_has_gstreamer()


@functools.cache
def available_elements() -> frozenset[str]:
    """The elements the pipeline builder asks about that this machine has (GStreamer's registry; without gi, the
    listing of ``gst-inspect-1.0``)."""
    wanted = _gst_pipeline.elements()
    Gst = gst()
    if Gst is not None:
        return frozenset(name for name in wanted if Gst.ElementFactory.find(name) is not None)
    tool = shutil.which("gst-inspect-1.0")
    if tool is None:
        return frozenset()
    listing = subprocess.run([tool], capture_output=True, text=True, timeout=60).stdout
    found = {m.group(1) for m in re.finditer(r"^[^:\s]+:[ \t]+([^:\s]+):", listing, re.MULTILINE)}
    return frozenset(found.intersection(wanted))


def build(spec: str, elements: frozenset[str] | set[str] | None = None) -> dict[str, Any]:
    """The builder's pipeline for ``spec`` (``kind``, ``pipeline``, ``live``, ``own_sink``); SourceError when the
    URI is malformed or an element is missing (one line naming its package)."""
    try:
        return _gst_pipeline.build(spec, set(available_elements() if elements is None else elements))
    except ValueError as e:
        raise SourceError(str(e)) from None


def wants_gstreamer(spec: str, decoder: str, is_file: bool) -> bool:
    """Whether ``open_source`` should open ``spec`` through GStreamer with this ``--decoder`` choice."""
    if decoder not in DECODERS:
        raise ValueError(f"--decoder must be one of {', '.join(DECODERS)}, got {decoder!r}")
    if decoder == "ffmpeg":
        return False
    if is_gst_uri(spec) or decoder == "gstreamer":
        return is_gst_uri(spec) or spec.startswith("rtsp://") or is_file
    return spec.startswith("rtsp://") and available()


def open_gstreamer(spec: str, timeout_s: float | None = None, stop: threading.Event | None = None,
                   *, is_file: bool = False) -> Source:
    """Open ``spec`` (a GStreamer URI, an RTSP URL, or a file with ``is_file``) through gi, else OpenCV's GStreamer
    backend; SourceError with one line when it cannot be opened."""
    if not available():
        raise SourceError(f"{spec}: {MISSING}")
    built = build(f"file:{spec}" if is_file else spec)
    log.info("%s: %s", spec, built["pipeline"])
    if gst() is not None:
        return GstSource(spec, built, timeout_s, stop)
    return OpenCvGstSource(spec, built)


def _kind(built: dict[str, Any]) -> str:
    return {"csi": "camera", "v4l2": "camera", "rtsp": "stream", "file": "file"}.get(built["kind"], "pipeline")


class OpenCvGstSource(VideoSource):
    """A builder pipeline read through ``cv2.CAP_GSTREAMER`` (cv2 built with GStreamer, no gi): frames until the
    pipeline ends or fails (no stepping over damaged frames, no capture times, no drop counts)."""

    def __init__(self, spec: str, built: dict[str, Any]) -> None:
        Source.__init__(self, spec)
        self.kind = _kind(built)
        self.live = built["live"]
        self.capture = cv2.VideoCapture(built["pipeline"], cv2.CAP_GSTREAMER)
        if not self.capture.isOpened():
            raise SourceError(f"cannot open {spec} through OpenCV's GStreamer backend (pipeline: {built['pipeline']})")
        fps = self.capture.get(cv2.CAP_PROP_FPS)
        self.fps = fps if 0 < fps < 1000 else None
        self.total = None
        self.stem = "frame"

    def __iter__(self) -> Iterator[Frame]:
        index = 0
        while True:
            t = time.perf_counter()
            ok, image = self.capture.read()
            if not ok or image is None or not image.size:
                break
            yield Frame(index, f"{index:06d}", to_bgr8(image), time.perf_counter() - t)
            index += 1
        if self.live:
            self._note(f"{self.spec}: the {self.kind} ended or failed after {index} frame(s)")


class GstSource(Source):
    """A pipeline run through PyGObject; iterating pulls frames from its appsink until EOS, an error, a stall
    (``timeout_s`` without a frame, live pipelines) or ``stop``. Opening waits for the first frame (at most
    ``timeout_s``, default 10 s), so a camera or server that is not there fails here, with one line."""

    def __init__(self, spec: str, built: dict[str, Any], timeout_s: float | None = None,
                 stop: threading.Event | None = None) -> None:
        super().__init__(spec)
        Gst = self.Gst = gst()
        from gi.repository import GLib
        self.kind = _kind(built)
        self.timeout_s = 10.0 if timeout_s is None else timeout_s
        self.stop = stop
        self._arrived = 0
        self._pulled = 0
        self._closed = False
        self._problem: str | None = None
        try:
            self.pipeline = Gst.parse_launch(built["pipeline"])
        except GLib.Error as e:
            raise SourceError(f"{spec}: not a usable GStreamer pipeline: {e.message}") from None
        self.sink = self.pipeline.get_by_name(_gst_pipeline.SINK_NAME) or self._find_appsink()
        if self.sink is None:
            raise SourceError(f"{spec}: the pipeline has no appsink to read frames from")
        self.sink.get_static_pad("sink").add_probe(Gst.PadProbeType.BUFFER, self._count)
        self.bus = self.pipeline.get_bus()
        state = self.pipeline.set_state(Gst.State.PAUSED)
        self.live = built["live"] or state == Gst.StateChangeReturn.NO_PREROLL
        if self.live and built["own_sink"]:  # a live gst: pipeline: the latest frame only, as for cameras
            self.sink.set_property("drop", True)
            self.sink.set_property("max-buffers", 1)
        if state != Gst.StateChangeReturn.FAILURE:
            state = self.pipeline.set_state(Gst.State.PLAYING)
        self._first = None
        problem = self._bus_problem() if state == Gst.StateChangeReturn.FAILURE else None
        if problem is None:
            self._first = self._pull(self.timeout_s)
            problem = self._problem
        if self._first is None:
            self.close()
            what = {"camera": "camera", "stream": "stream"}.get(self.kind, "GStreamer source")
            raise SourceError(f"cannot open {what} {spec}: {problem}")
        caps = self._first.get_caps().get_structure(0)
        ok, num, den = caps.get_fraction("framerate")
        self.fps = num / den if ok and den and 0 < num / den < 1000 else None

    @property
    def dropped(self) -> int:
        """Frames that reached the appsink and were replaced by a newer one before being read (live pipelines)."""
        return max(0, self._arrived - self._pulled - 1) if self.live else 0

    def _count(self, pad: Any, info: Any) -> Any:
        self._arrived += 1
        return self.Gst.PadProbeReturn.OK

    def _find_appsink(self) -> Any:
        it = self.pipeline.iterate_recurse()
        while True:
            ok, element = it.next()
            if ok != self.Gst.IteratorResult.OK:
                return None
            factory = element.get_factory()
            if factory is not None and factory.get_name() == "appsink":
                return element

    def _bus_problem(self) -> str | None:
        """The first error on the bus, "end of stream", or None."""
        Gst = self.Gst
        msg = self.bus.pop_filtered(Gst.MessageType.ERROR | Gst.MessageType.EOS)
        if msg is None:
            return None
        if msg.type == Gst.MessageType.EOS:
            return "end of stream"
        error, _ = msg.parse_error()
        return error.message.rstrip(".")

    def _pull(self, timeout_s: float | None) -> Any:
        """The next sample, or None (end, error, stall, stop): ``self._problem`` says which."""
        self._problem = None
        start = time.monotonic()
        while not self._closed:
            if self.stop is not None and self.stop.is_set():
                self._problem = "stopped"
                return None
            sample = self.sink.try_pull_sample(int(PULL_S * 1e9))
            if sample is not None:
                return sample
            problem = self._bus_problem()
            if problem is None and self.sink.is_eos():
                problem = "end of stream"
            if problem is None and timeout_s is not None and time.monotonic() - start > timeout_s:
                problem = f"no frame for {timeout_s:g} s"
            if problem is not None:
                self._problem = problem
                return None
        return None

    def _image(self, sample: Any) -> np.ndarray:
        caps = sample.get_caps().get_structure(0)
        width, height = caps.get_value("width"), caps.get_value("height")
        buffer = sample.get_buffer()
        data = np.frombuffer(buffer.extract_dup(0, buffer.get_size()), np.uint8)
        stride = data.size // height  # rows are padded to 4 bytes
        return np.ascontiguousarray(data[: stride * height].reshape(height, stride)[:, : width * 3]).reshape(
            height, width, 3)

    def _captured(self, sample: Any, read_time: float) -> float:
        """The capture time on the perf_counter clock: the buffer's timestamp mapped to the pipeline clock (live
        pipelines; clamped to the read time), else the read time."""
        Gst = self.Gst
        pts = sample.get_buffer().pts
        clock = self.pipeline.get_clock()
        if not self.live or pts == Gst.CLOCK_TIME_NONE or clock is None:
            return read_time
        running = sample.get_segment().to_running_time(Gst.Format.TIME, pts)
        if running == Gst.CLOCK_TIME_NONE or running < 0:
            return read_time
        age_s = (clock.get_time() - (self.pipeline.get_base_time() + running)) / 1e9
        return read_time - age_s if 0.0 <= age_s < 60.0 else read_time

    def __iter__(self) -> Iterator[Frame]:
        index = 0
        while True:
            t = time.perf_counter()
            sample, self._first = self._first or self._pull(self.timeout_s if self.live else None), None
            if sample is None:
                break
            self._pulled += 1
            image = self._image(sample)
            read_time = time.perf_counter()
            yield Frame(index, f"{index:06d}", image, read_time - t, self._captured(sample, read_time))
            index += 1
        if self._problem not in (None, "stopped") and (self._problem != "end of stream" or self.live):
            self._note(f"{self.spec}: {self._problem} after {index} frame(s)")

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.pipeline.set_state(self.Gst.State.NULL)
