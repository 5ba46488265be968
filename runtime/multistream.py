"""Many cameras in one process: frames of several streams share batched inference, then go their own ways.

    ms = MultiStream(Segmenter("model.onnx", crf=None), ["demo", "cam2=rtsp://10.0.0.2/live"])
    for stream, index, labels, probs in ms.run(): ...      # in order within each stream
    ms.summary()                                            # per-stream and aggregate figures

Threads: one reader per stream (``runtime.streams``: decode, preprocess, reconnect), one batcher, one lane per stream.
The batcher takes the oldest waiting frame, then gathers frames of the same network input size from the other
streams (round robin) until the batch is full (``max_batch``: the backend's limit — an engine profile's max N,
Triton's ``max_batch_size`` — or the number of streams) or the gather window (``gather_ms``) ends, so a slow stream
never holds the others back. One inference call serves the batch; each frame's logits go to its stream's lane, which
upsamples, runs the CRF (the ``crf`` package releases the GIL, so lanes run in parallel) and writes that stream's
outputs in frame order. A stream has at most ``max_in_flight`` frames between its reader and its outputs.

Faults stay local: a source that cannot be opened, stalls, sends undecodable data or ends is counted in its own
figures while the other streams go on. Only a backend that is gone (:class:`BackendUnavailable`) or an output that
cannot be written stops the run.
"""
from __future__ import annotations

import queue
import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Any, Callable, Iterator, NamedTuple, Sequence

import numpy as np

from runtime.backends.base import BackendUnavailable
from runtime.errors import FrameError
from runtime.pipeline import percentiles
from runtime.sinks import Sink
from runtime.streams import (FAILED, RUNNING, Inbox, Prepared, StreamCounters, StreamReader, StreamSpec, is_live,
                             parse_stream, unique_names)

if TYPE_CHECKING:
    from runtime.segmenter import Segmenter

_END = object()
LATENCY_WINDOW = 4096  # latencies kept per stream for the percentiles (a long-running service stays bounded)
RATE_WINDOW_S = 5.0    # the "recent fps" of the live view


class StreamResult(NamedTuple):
    stream: str
    index: int
    labels: np.ndarray | None   # None when the frame failed
    probs: np.ndarray | None    # with return_probs=True (or when the CRF produced them)


class _Stream:
    """One stream's reader, lane, sinks and figures."""

    def __init__(self, spec: StreamSpec, reader: StreamReader, inbox: Inbox) -> None:
        self.spec = spec
        self.reader = reader
        self.inbox = inbox
        self.counters = inbox.counters
        self.lane: queue.Queue = queue.Queue()
        self.in_flight = 0
        self.processed = 0
        self.latency: deque[float] = deque(maxlen=LATENCY_WINDOW)
        self.glass: deque[float] = deque(maxlen=LATENCY_WINDOW)  # capture → outputs written (glass to mask)
        self.done_at: deque[float] = deque(maxlen=1024)
        self.sinks: list[Sink] | None = None
        self.previous: np.ndarray | None = None  # the last CRF result, for warm starts
        self.lattices: Any = None  # this stream's cache of smoothness lattices (Segmenter.crf_cache)
        self.thread: threading.Thread | None = None
        self.first_t0: float | None = None  # when its first processed frame began decoding
        self.ended_at: float | None = None  # when its outputs were closed (the stream ended)
        self.finishing = False              # the end was handed to its lane


class MultiStream:
    """Segment several streams with one :class:`Segmenter`, batching inference across them.

    ``streams``: ``[NAME=]SOURCE`` strings or :class:`StreamSpec`; ``max_batch``: frames per inference call (default:
    the backend's limit, or the number of streams); ``gather_ms``: how long a batch waits for more frames after its
    first; ``reconnect``: reopen live sources that fail (default: network sources yes, cameras no);
    ``stall_timeout``: seconds without a frame after which a live source counts as stalled; ``duration``: stop
    reading after so many seconds (frames already read are finished); ``max_frames``: each stream ends after so many
    frames; ``max_in_flight``: a stream's frames between its reader and its outputs; ``queue_size``: frames a file
    stream reads ahead; ``sequential``: one frame at a time through inference and the outputs (batches of one, no
    overlap between streams' inference and post-processing); ``sinks``: ``factory(stream name, reader) -> [Sink]``,
    called at a stream's first frame and closed when that stream ends; ``return_probs``: also return
    probabilities; ``decoder``: how sources are opened (``auto``, ``gstreamer``, ``ffmpeg``:
    :mod:`runtime.gst_source`)."""

    def __init__(self, segmenter: "Segmenter", streams: Sequence[str | StreamSpec], *, max_batch: int | None = None,
                 gather_ms: float = 5.0, reconnect: bool | None = None, stall_timeout: float = 10.0,
                 duration: float | None = None, max_in_flight: int = 2, return_probs: bool = False,
                 sinks: Callable[[str, StreamReader], list[Sink]] | None = None,
                 backoff: tuple[float, float] = (0.5, 30.0), max_frames: int | None = None,
                 queue_size: int | None = None, sequential: bool = False, decoder: str = "auto") -> None:
        specs = unique_names([s if isinstance(s, StreamSpec) else parse_stream(s) for s in streams])
        if not specs:
            raise ValueError("no streams given")
        self.seg = segmenter
        limit = segmenter.backend.max_batch
        wanted = max_batch or len(specs)
        if wanted < 1:
            raise ValueError(f"max_batch must be ≥ 1, got {wanted}")
        self.max_batch = 1 if sequential else (min(wanted, limit) if limit else wanted)
        self.sequential = sequential
        self.queue_size = queue_size
        self.max_frames = max_frames
        self.stall_timeout = stall_timeout
        self.gather_s = max(0.0, gather_ms) / 1000.0
        self.duration = duration
        self.max_in_flight = max(1, max_in_flight)
        self.return_probs = return_probs
        self.sink_factory = sinks
        self._cond = threading.Condition()
        self._reading = threading.Event()   # set: readers stop (the batcher then drains what was read)
        self._abort = threading.Event()     # set: everything stops now
        self._errors: list[BaseException] = []
        self._results: queue.Queue = queue.Queue(maxsize=64)
        self.batches: deque[int] = deque(maxlen=LATENCY_WINDOW)
        self.infer_s: deque[float] = deque(maxlen=LATENCY_WINDOW)
        self.start: float | None = None
        self.end: float | None = None
        self.streams: dict[str, _Stream] = {}
        for spec in specs:
            live = is_live(spec.source)
            inbox = Inbox(live, queue_size or self.max_in_flight, self._cond, StreamCounters(live=live))
            reader = StreamReader(spec, inbox, segmenter.preprocess, self._reading, reconnect=reconnect,
                                  stall_timeout=stall_timeout, backoff=backoff, max_frames=max_frames,
                                  decoder=decoder)
            self.streams[spec.name] = _Stream(spec, reader, inbox)
            self.streams[spec.name].lattices = segmenter.crf_cache()

    # -- control --------------------------------------------------------------------------------------------------
    def stop(self) -> None:
        """Stop reading; frames already read are finished and ``run`` ends (thread-safe, e.g. from a signal)."""
        self._reading.set()
        with self._cond:
            self._cond.notify_all()

    def run(self) -> Iterator[StreamResult]:
        """Yield every processed (or failed) frame as a :class:`StreamResult`, in order within each stream. The
        outputs are closed when the iteration ends, whatever ends it; a fatal error is raised here."""
        self.start = time.perf_counter()
        for s in self.streams.values():
            s.thread = threading.Thread(target=self._lane, args=(s,), name=f"lane-{s.spec.name}", daemon=True)
            s.thread.start()
            s.reader.start()
        batcher = threading.Thread(target=self._guard(self._batcher), name="batcher", daemon=True)
        batcher.start()
        try:
            while True:
                if self.duration is not None and time.perf_counter() - self.start > self.duration:
                    self.stop()
                try:
                    item = self._results.get(timeout=0.1)
                except queue.Empty:
                    if self._abort.is_set() and not batcher.is_alive():
                        break
                    continue
                if item is _END:
                    break
                yield item
        finally:
            self.end = time.perf_counter()  # the figures end here, not after the threads have wound down
            self._abort.set()
            self._reading.set()
            with self._cond:
                self._cond.notify_all()
            batcher.join(timeout=30)
            for s in self.streams.values():
                if s.thread is not None:
                    s.thread.join(timeout=30)
            # A reader blocked in a network open or read ends with its timeout: it is a daemon thread, and what it
            # held is released when it does; waiting for it would only delay the exit.
            deadline = time.monotonic() + 0.5
            for s in self.streams.values():
                s.reader.thread.join(timeout=max(0.0, deadline - time.monotonic()))
        if self._errors:
            raise self._errors[0]

    def _guard(self, body: Callable[[], None]) -> Callable[[], None]:
        def target() -> None:
            try:
                body()
            except BaseException as e:  # noqa: BLE001 - fatal: stop everything, re-raised in the caller's thread
                self._errors.append(e)
                self._abort.set()
                self._reading.set()
        return target

    # -- batching -------------------------------------------------------------------------------------------------
    def _readers_done(self) -> bool:
        return all(s.reader.done or not s.reader.thread.is_alive() for s in self.streams.values())

    def _oldest(self) -> tuple[int, ...] | None:
        """The input size of the oldest frame that may be taken now, or None."""
        if self.sequential and any(s.in_flight for s in self.streams.values()):
            return None  # the frame before is still being post-processed
        heads = [s.inbox.items[0] for s in self.streams.values()
                 if s.inbox.items and s.in_flight < self.max_in_flight]
        return min(heads, key=lambda p: p.t0).size if heads else None

    def _collect(self, size: tuple[int, ...], batch: list[Prepared], rotation: int) -> None:
        streams = list(self.streams.values())
        streams = streams[rotation % len(streams):] + streams[:rotation % len(streams)]
        taken = True
        while taken and len(batch) < self.max_batch:
            taken = False
            for s in streams:
                if len(batch) >= self.max_batch:
                    break
                if s.inbox.items and s.in_flight < self.max_in_flight and s.inbox.items[0].size == size:
                    batch.append(s.inbox.items.pop(0))
                    s.in_flight += 1
                    taken = True
        self._cond.notify_all()  # room in the inboxes of file streams

    def _gather(self, rotation: int) -> list[Prepared] | None:
        """The next batch (frames of one input size), or None when every stream is done or the run is aborted."""
        with self._cond:
            self._finish_ended()
            while (size := self._oldest()) is None:
                self._finish_ended()
                if self._abort.is_set():
                    return None
                if self._readers_done() and not any(s.inbox.items for s in self.streams.values()):
                    return None
                self._cond.wait(0.05)
            batch: list[Prepared] = []
            deadline = time.perf_counter() + self.gather_s
            while not self._abort.is_set():
                self._collect(size, batch, rotation)
                remaining = deadline - time.perf_counter()
                if len(batch) >= self.max_batch or remaining <= 0 or self._readers_done():
                    break
                self._cond.wait(remaining)
            return None if self._abort.is_set() else batch

    def _finish_ended(self) -> None:
        """Hand the end to the lane of each stream whose reader is done and whose every frame went through: its
        outputs are closed (a video finalised) now, not when the whole run ends."""
        for s in self.streams.values():
            if (not s.finishing and (s.reader.done or not s.reader.thread.is_alive()) and not s.inbox.items
                    and s.in_flight == 0 and s.reader.opened.is_set()):
                s.finishing = True
                s.lane.put(_END)

    def _batcher(self) -> None:
        rotation = 0
        try:
            while (batch := self._gather(rotation)) is not None:
                rotation += 1
                self._infer(batch)
        finally:
            for s in self.streams.values():
                s.lane.put(_END)
            for s in self.streams.values():
                if s.thread is not None:
                    s.thread.join()
            self._put_result(_END)

    def _infer(self, batch: list[Prepared]) -> None:
        ready = [p for p in batch if p.x is not None]
        logits: np.ndarray | None = None
        error: str | None = None
        dt = 0.0
        if ready:
            x = ready[0].x if len(ready) == 1 else np.concatenate([p.x for p in ready])
            t = time.perf_counter()
            try:
                logits = self.seg.infer_batch(x)
            except BackendUnavailable:
                raise  # the server or device is gone: every later frame would fail too
            except FrameError as e:
                error = f"infer: {e}"
            dt = time.perf_counter() - t
            self.batches.append(len(ready))
            self.infer_s.append(dt)
        row = 0
        for p in batch:
            out = None
            if p.x is not None:
                if logits is not None:
                    out = logits[row]
                else:
                    p.error = error
                row += 1
            p.x = None
            self.streams[p.stream].lane.put((p, out, dt))

    # -- per-stream lanes -----------------------------------------------------------------------------------------
    def _lane(self, s: _Stream) -> None:
        try:
            while (got := self._lane_get(s)) is not _END:
                item, logits, infer_s = got
                try:
                    result = self._process(s, item, logits)
                finally:
                    with self._cond:
                        s.in_flight -= 1
                        self._cond.notify_all()
                if not self._put_result(result):
                    break
        except BaseException as e:  # noqa: BLE001 - an output that cannot be written: fatal, re-raised by run()
            self._errors.append(e)
            self._abort.set()
            self._reading.set()
        finally:
            try:
                for sink in s.sinks or ():
                    sink.close()
            finally:
                s.ended_at = time.perf_counter()

    def _lane_get(self, s: _Stream) -> Any:
        while not self._abort.is_set():
            try:
                return s.lane.get(timeout=0.05)
            except queue.Empty:
                continue
        return _END

    def _process(self, s: _Stream, item: Prepared, logits: np.ndarray | None) -> StreamResult:
        seg = self.seg
        labels = probs = None
        if item.error is None and logits is not None:
            try:
                if seg.crf is None and not self.return_probs:
                    labels = seg.labels(logits, item.padding)
                else:
                    probs = seg.upsample(logits, item.padding)
                    if seg.crf is not None:
                        init = s.previous if seg.warm_start else None
                        probs = seg.refine(item.frame.image, probs, init=init, lattices=s.lattices)
                        s.previous = probs
                    labels = seg.argmax(probs)
            except FrameError as e:
                item.error = f"postprocess: {e}"
        if labels is None:
            s.counters.failed += 1
            s.counters.errors[item.error or "no logits"] += 1
            return StreamResult(s.spec.name, item.frame.index, None, None)
        if s.sinks is None:
            s.sinks = self.sink_factory(s.spec.name, s.reader) if self.sink_factory else []
        for sink in s.sinks:
            sink.write(item.frame, labels)
        now = time.perf_counter()
        if s.first_t0 is None:
            s.first_t0 = item.t0
        s.processed += 1
        s.latency.append(now - item.t0)
        s.glass.append(now - (item.frame.captured if item.frame.captured is not None else item.t0))
        s.done_at.append(now)
        return StreamResult(s.spec.name, item.frame.index, labels, probs if self.return_probs else None)

    def _put_result(self, result: Any) -> bool:
        while True:
            try:
                self._results.put(result, timeout=0.05)
                return True
            except queue.Full:
                if self._abort.is_set():
                    return False

    # -- figures --------------------------------------------------------------------------------------------------
    def _elapsed(self) -> float:
        if self.start is None:
            return 0.0
        return (self.end or time.perf_counter()) - self.start

    def stream_summary(self, name: str) -> dict[str, Any]:
        s = self.streams[name]
        c = s.counters
        now = time.perf_counter()
        # its own active time: from its first frame to its end (a stream that ended early is not averaged over the
        # time the others went on)
        active = ((s.ended_at or self.end or now) - s.first_t0) if s.first_t0 is not None else 0.0
        recent = sum(1 for t in list(s.done_at) if now - t <= RATE_WINDOW_S)
        window = min(RATE_WINDOW_S, now - self.start) if self.start is not None else 0.0
        return {
            "source": s.spec.source,
            "state": c.state,
            "live": c.live,
            "frames": {"processed": s.processed, "decoded": c.decoded, "dropped": c.dropped, "skipped": c.skipped,
                       "failed": c.failed},
            "fps": round(s.processed / active, 3) if active > 0 else 0.0,
            "active_s": round(active, 3),
            "producing": c.state == RUNNING and bool(s.done_at) and now - s.done_at[-1] <= self.stall_timeout,
            "recent_fps": round(recent / window, 3) if window > 0 else 0.0,
            "end_to_end": percentiles(list(s.latency)),
            "latency": percentiles(list(s.glass)),
            "reconnects": c.reconnects,
            "idle_s": round(time.monotonic() - c.last_frame, 3) if c.last_frame is not None else None,
            "errors": dict(c.errors),
        }

    def summary(self, **extra: Any) -> dict[str, Any]:
        """Per-stream figures (fps, latency p50/p90/p99, drops, reconnects, errors) and the aggregate."""
        streams = {name: self.stream_summary(name) for name in self.streams}
        elapsed = self._elapsed()
        processed = sum(s.processed for s in self.streams.values())
        latencies = [t for s in self.streams.values() for t in list(s.latency)]
        batches = list(self.batches)
        total = {key: sum(v["frames"][key] for v in streams.values())
                 for key in ("processed", "decoded", "dropped", "skipped", "failed")}
        out: dict[str, Any] = {
            "streams": streams,
            "mode": "sequential" if self.sequential else "overlapped",
            "settings": {"max_batch": self.max_batch, "max_in_flight": self.max_in_flight,
                         "queue_size": self.queue_size or self.max_in_flight, "max_frames": self.max_frames},
            "aggregate": {
                "frames": total,
                "fps": round(processed / elapsed, 3) if elapsed > 0 else 0.0,
                "wall_s": round(elapsed, 3),
                "end_to_end": percentiles(latencies),
                "latency": percentiles([t for s in self.streams.values() for t in list(s.glass)]),
                "reconnects": sum(v["reconnects"] for v in streams.values()),
                "errors": sum(sum(v["errors"].values()) for v in streams.values()),
                "failed_streams": [n for n, v in streams.items() if v["state"] == FAILED],
                "batch": {"max": self.max_batch, "mean": round(float(np.mean(batches)), 3) if batches else 0.0,
                          "calls": len(batches), "gather_ms": round(self.gather_s * 1000, 3)},
                "infer": percentiles(list(self.infer_s)),
            },
        }
        out.update(extra)
        return out
