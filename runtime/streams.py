"""Named streams for multi-camera runs: ``NAME=SOURCE`` specs, source list files, and one reader thread per stream.

A reader opens its source, decodes and preprocesses frames, and hands them on. Live sources (cameras, network URLs)
keep only their latest frame: a frame that was not taken before the next one arrived is dropped and counted, so a
slow consumer never works on stale video. Files and images hand over every frame in order (the reader waits for
room). A network source that fails to open, stalls (no frame for ``stall_timeout`` s) or ends is reopened with
exponential backoff when ``reconnect`` is on (the default for network sources); each reconnect is logged and counted.
Whatever happens to one stream stays in its own :class:`StreamCounters`.
"""
from __future__ import annotations

import logging
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator
from urllib.parse import urlparse

import numpy as np

from runtime import gst_source, named
from runtime.errors import FrameError
from runtime.preprocess import Padding
from runtime.sources import MAX_CONSECUTIVE_FAILURES, Frame, Source, SourceError, VideoSource, is_url, open_source

log = logging.getLogger(__name__)

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_EXPLICIT_NAME = re.compile(r"^([^=:/\\]*)=(.*)$")
_COMMENT = re.compile(r"(^|[ \t])#")
SOURCES_GRAMMAR = ("one stream per line: [NAME=]SOURCE (NAME: letters, digits, '_', '-', '.'; SOURCE: a video, camera "
                   "index, URL, image, directory or glob, checked to exist unless live); '#' at the start of a line or "
                   "after a space begins a comment; blank lines are skipped")

# Stream states, as shown in the statistics and the live view.
CONNECTING, RUNNING, RECONNECTING, ENDED, FAILED = "connecting", "running", "reconnecting", "ended", "failed"


class SpecError(ValueError):
    """A ``--source``/``--sources`` entry that cannot be used; the message names the entry in one line."""


@dataclass(frozen=True)
class StreamSpec:
    name: str              # output names (DIR/<name>.mp4, DIR/<name>/) and the key in statistics
    source: str            # anything runtime.sources.open_source takes
    explicit: bool = False  # named by the user (NAME=SOURCE), not derived from the source


def default_name(source: str) -> str:
    """A file-name-safe stream name from a source: ``demo``, ``cam0``, ``host-path`` for URLs, the file's stem."""
    if source.isdigit():
        return f"cam{source}"
    if (gst_name := gst_source.default_name(source)) is not None:
        return gst_name
    if is_url(source):
        url = urlparse(source)
        parts = [url.hostname or ""] + [Path(p).stem for p in url.path.split("/") if p]
        raw = "-".join(p for p in parts if p)
    else:
        raw = Path(source.rstrip("/\\").replace("*", "").replace("?", "")).stem or Path(source).name
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", raw).strip("._-")[:64]
    return name or "stream"


def parse_stream(text: str, where: str = "--source") -> StreamSpec:
    """``SOURCE`` or ``NAME=SOURCE``; :class:`SpecError` for an empty entry, a bad name or a name without source."""
    text = text.strip()
    if not text:
        raise SpecError(f"{where}: empty source")
    match = _EXPLICIT_NAME.match(text)
    if match is None:
        return StreamSpec(default_name(text), text)
    name, source = match.group(1).strip(), match.group(2).strip()
    if not NAME_PATTERN.match(name):
        raise SpecError(f"{where}: bad stream name {name!r} in {text!r} (letters, digits, '_', '-', '.', "
                        "at most 64, not starting with a symbol)")
    if not source:
        raise SpecError(f"{where}: stream {name!r} has no source after '='")
    return StreamSpec(name, source, explicit=True)


def is_live(source: str) -> bool:
    """Cameras (index, csi://, v4l2://, /dev/videoN) and network URLs deliver frames in real time; files, images and
    gst: pipelines wait for the reader."""
    return source.isdigit() or is_url(source) or gst_source.is_live_uri(source)


def _strip_comment(line: str) -> str:
    """The line without its comment: ``#`` at the start or after a space or tab starts one (``#`` inside a URL or a
    file name does not)."""
    match = _COMMENT.search(line)
    return (line[:match.start()] if match else line).strip()


def _exists(source: str) -> bool:
    """A source that can be checked before the run: a live one, a declared name, a glob or an existing path."""
    return is_live(source) or named.is_name(source) or any(ch in source for ch in "*?[") or Path(source).exists()


def read_sources_file(path: str | Path) -> list[StreamSpec]:
    """The streams of a ``--sources`` file (:data:`SOURCES_GRAMMAR`); a bad line is a :class:`SpecError` naming the
    file and the line number."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise SpecError(f"--sources {path}: file not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise SpecError(f"--sources {path}: cannot read it ({e})") from None
    specs = []
    for number, line in enumerate(lines, 1):
        text = _strip_comment(line)
        if not text:
            continue
        where = f"{path}:{number}"
        spec = parse_stream(text, where)
        if any(ch.isspace() for ch in spec.source) and not Path(spec.source).exists():
            raise SpecError(f"{where}: expected one [NAME=]SOURCE, got {text!r} (a comment starts with ' #')")
        if not _exists(spec.source):
            raise SpecError(f"{where}: source not found: {spec.source}")
        specs.append(spec)
    if not specs:
        raise SpecError(f"--sources {path}: no sources in it (one [NAME=]SOURCE per line)")
    return specs


def unique_names(specs: list[StreamSpec]) -> list[StreamSpec]:
    """Names given with NAME=SOURCE must be unique (SpecError); a derived name that collides with any other name
    gets ``-2``, ``-3``..."""
    explicit = [s.name for s in specs if s.explicit]
    twice = sorted({n for n in explicit if explicit.count(n) > 1})
    if twice:
        raise SpecError(f"stream name {twice[0]!r} is given twice (name streams with NAME=SOURCE)")
    taken = set(explicit)
    out: list[StreamSpec] = []
    for spec in specs:
        name = spec.name
        if not spec.explicit:
            k = 2
            while name in taken:
                name, k = f"{spec.name}-{k}", k + 1
            taken.add(name)
        out.append(StreamSpec(name, spec.source, spec.explicit))
    return out


@dataclass
class StreamCounters:
    """What happened to one stream. ``decoded`` frames are either ``dropped`` (live: a newer frame replaced it) or
    handed on; ``skipped`` frames could not be decoded; ``failed`` frames could not be processed."""

    state: str = CONNECTING
    live: bool = False
    decoded: int = 0
    dropped: int = 0
    skipped: int = 0
    failed: int = 0
    reconnects: int = 0
    connections: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    last_frame: float | None = None  # time.monotonic() of the last decoded frame (idle_s in the figures)

    def error(self, message: str) -> None:
        log.warning("%s", message)
        self.errors[message] += 1


@dataclass
class Prepared:
    """A decoded frame with its network input, ready to be batched."""

    stream: str
    frame: Frame
    x: np.ndarray | None        # 1×3×H×W (None when preprocessing failed: ``error`` says why)
    padding: Padding | None
    t0: float                   # time.perf_counter() when its decoding started
    error: str | None = None

    @property
    def size(self) -> tuple[int, ...]:
        return tuple(self.x.shape[2:]) if self.x is not None else ()


class Inbox:
    """Frames of one stream waiting for the batcher: the latest one only (live) or up to ``depth`` in order."""

    def __init__(self, live: bool, depth: int, cond: threading.Condition, counters: StreamCounters) -> None:
        self.live = live
        self.depth = max(1, depth)
        self.cond = cond
        self.counters = counters
        self.items: list[Prepared] = []

    def put(self, item: Prepared, stop: threading.Event) -> bool:
        """Hand a frame over; False when stopping. Live: replaces a waiting frame (counted as dropped)."""
        with self.cond:
            if self.live:
                self.counters.dropped += len(self.items)
                self.items = [item]
            else:
                while len(self.items) >= self.depth:
                    if stop.is_set():
                        return False
                    self.cond.wait(0.05)
                self.items.append(item)
            self.cond.notify_all()
        return True


class StreamReader:
    """The thread that opens, reads and reopens one stream. ``prepare`` turns an image into the network input."""

    def __init__(self, spec: StreamSpec, inbox: Inbox, prepare: Callable[[np.ndarray], tuple[np.ndarray, Padding]],
                 stop: threading.Event, *, reconnect: bool | None = None, stall_timeout: float = 10.0,
                 backoff: tuple[float, float] = (0.5, 30.0), decoder: str = "auto",
                 max_frames: int | None = None) -> None:
        self.spec = spec
        self.decoder = decoder
        self.inbox = inbox
        self.counters = inbox.counters
        self.prepare = prepare
        self.stop = stop
        self.network = is_url(spec.source)
        self.live = is_live(spec.source)
        self.reconnect = self.network if reconnect is None else (reconnect and self.live)
        self.stall_timeout = stall_timeout
        self.backoff = backoff
        self.source: Source | None = None
        self.index = 0  # frame numbers run on across reconnects, so outputs never overwrite each other
        self.max_frames = max_frames  # the stream ends after this many frames (None: when the source does)
        self.fps: float | None = None
        self.opened = threading.Event()  # set once the first open attempt is over (success or not)
        self.thread = threading.Thread(target=self._run, name=f"reader-{spec.name}", daemon=True)

    def start(self) -> None:
        self.thread.start()

    @property
    def done(self) -> bool:
        return self.counters.state in (ENDED, FAILED)

    def _open(self) -> Source | None:
        try:
            source = open_source(self.spec.source, timeout_s=self.stall_timeout if self.live else None,
                                 decoder=self.decoder, stop=self.stop)
        except (SourceError, OSError) as e:
            self.counters.error(f"{self.spec.name}: {e}")
            return None
        finally:
            self.opened.set()
        self.counters.connections += 1
        self.fps = self.fps or source.fps
        return source

    def _run(self) -> None:
        delay = self.backoff[0]
        first = True
        while not self.stop.is_set():
            if not first:
                self.counters.state = RECONNECTING
                log.warning("%s: reconnecting in %.1f s", self.spec.name, delay)
                if self.stop.wait(delay):
                    break
                delay = min(delay * 2, self.backoff[1])
                self.counters.reconnects += 1
            first = False
            source = self._open()
            if source is not None:
                self.source = source
                self.counters.state = RUNNING
                try:
                    if self._pump(source):
                        delay = self.backoff[0]  # frames came through: the next outage starts the backoff afresh
                finally:
                    source.close()
                    self.counters.skipped += source.skipped
                    for note in source.notes:
                        self.counters.errors[note] += 1
            if not self.reconnect or self.stop.is_set() or self._at_limit():
                break
        if self.counters.state != FAILED:
            self.counters.state = ENDED if self.counters.connections else FAILED

    def _at_limit(self) -> bool:
        return self.max_frames is not None and self.index >= self.max_frames

    def _frames(self, source: Source) -> Iterator[Frame]:
        if not self.live or not isinstance(source, VideoSource):
            yield from source
            return
        # Live: a failed read (end of stream, error or the read timeout) ends this connection; a stall is a run of
        # failed reads longer than stall_timeout (each read waits at most that long for the network).
        failures = 0
        last = time.monotonic()
        while not self.stop.is_set():
            t = time.perf_counter()
            ok, image = source.capture.read()
            if ok and image is not None and image.size:
                failures = 0
                last = time.monotonic()
                yield Frame(0, "", image, time.perf_counter() - t)
                continue
            failures += 1
            if time.monotonic() - last > self.stall_timeout:
                self.counters.error(f"{self.spec.name}: stalled (no frame for {self.stall_timeout:g} s)")
                return
            if failures > MAX_CONSECUTIVE_FAILURES:
                self.counters.error(f"{self.spec.name}: the stream ended or dropped")
                return

    def _pump(self, source: Source) -> bool:
        """Read until the source ends; True when at least one frame came through."""
        got = False
        dropped = 0  # what the source itself dropped (GStreamer's appsink), counted as it grows
        for frame in self._frames(source):
            if self.stop.is_set():
                break
            t0 = time.perf_counter() - frame.decode_s
            got = True
            self.counters.decoded += 1
            self.counters.last_frame = time.monotonic()
            self.counters.dropped += source.dropped - dropped
            dropped = source.dropped
            name = frame.name if source.kind == "images" else f"{self.index:06d}"
            captured = frame.captured if frame.captured is not None else t0 + frame.decode_s  # else: the read time
            frame = Frame(self.index, name, frame.image, frame.decode_s, captured)
            self.index += 1
            try:
                x, padding = self.prepare(frame.image)
                item = Prepared(self.spec.name, frame, x, padding, t0)
            except FrameError as e:
                item = Prepared(self.spec.name, frame, None, None, t0, f"preprocess: {e}")
            if not self.inbox.put(item, self.stop) or self._at_limit():
                break
        return got

