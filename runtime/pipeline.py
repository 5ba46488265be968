"""The overlapped video pipeline: decode → preprocess → infer → upsample(+softmax) → CRF → outputs.

Each stage runs in its own thread, linked by bounded queues: decoding frame k+1 and the CRF of frame k−1 happen while
frame k is inferred (the heavy parts — FFmpeg decoding, ONNX Runtime/TensorRT, the C++ upsampling and the CRF —
release the GIL). One thread per stage keeps frame order; a slow consumer fills the queues and blocks the stages
before it (back-pressure: memory stays bounded). ``overlapped=False`` runs the same stage functions one after the
other, for comparison. Per-stage times and end-to-end latency are collected in :class:`Stats`.

A frame that fails with a :class:`~runtime.errors.FrameError` (an unusable image, a backend error on that input) is
counted and skipped; any other error (a sink that cannot write, a backend that is gone, a bug) stops the pipeline and
is raised to the caller. Stopping for any reason — the end of the source,
``max_frames``, an exception, Ctrl-C, the caller leaving the loop — closes the sinks, so outputs are complete files.
"""
from __future__ import annotations

import itertools
import queue
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from runtime.backends.base import BackendUnavailable
from runtime.errors import FrameError
from runtime.preprocess import Padding
from runtime.segmenter import Segmenter
from runtime.sinks import Sink
from runtime.sources import Frame, Source

STAGES = ("decode", "preprocess", "infer", "upsample", "crf", "output")
_END = object()


@dataclass
class Result:
    frame: Frame
    labels: np.ndarray | None          # None when the frame failed
    probs: np.ndarray | None
    times: dict[str, float]            # seconds per stage
    latency: float                     # seconds from the start of decoding to the end of the outputs
    error: str | None = None
    glass_to_mask: float = 0.0         # seconds from the frame's capture (else its read time) to the end of the outputs


@dataclass
class _Item:
    frame: Frame
    t0: float
    captured: float
    times: dict[str, float] = field(default_factory=dict)
    x: np.ndarray | None = None
    padding: Padding | None = None
    logits: np.ndarray | None = None
    probs: np.ndarray | None = None
    labels: np.ndarray | None = None
    error: str | None = None


def percentiles(values_s: Sequence[float]) -> dict[str, float]:
    """p50/p90/p99/mean in milliseconds (empty input: zeros)."""
    if not values_s:
        return {"p50_ms": 0.0, "p90_ms": 0.0, "p99_ms": 0.0, "mean_ms": 0.0, "count": 0}
    ms = np.asarray(values_s) * 1000.0
    p50, p90, p99 = np.percentile(ms, [50, 90, 99])
    return {"p50_ms": round(float(p50), 3), "p90_ms": round(float(p90), 3), "p99_ms": round(float(p99), 3),
            "mean_ms": round(float(ms.mean()), 3), "count": int(ms.size)}


class Stats:
    """Per-stage times, end-to-end latency and counts of one run."""

    def __init__(self) -> None:
        self.times: dict[str, list[float]] = defaultdict(list)
        self.latency: list[float] = []
        self.glass: list[float] = []
        self.processed = 0
        self.failed = 0
        self.errors: Counter[str] = Counter()
        self.start = time.perf_counter()
        self.end: float | None = None

    def add(self, result: Result) -> None:
        if result.error is not None:
            self.failed += 1
            self.errors[result.error] += 1
            return
        self.processed += 1
        for stage, seconds in result.times.items():
            self.times[stage].append(seconds)
        self.latency.append(result.latency)
        self.glass.append(result.glass_to_mask)

    @property
    def elapsed(self) -> float:
        return (self.end or time.perf_counter()) - self.start

    @property
    def fps(self) -> float:
        return self.processed / self.elapsed if self.elapsed > 0 else 0.0

    def summary(self, source: Source | None = None, /, **extra: Any) -> dict[str, Any]:
        stages = {s: percentiles(self.times[s]) for s in STAGES if self.times.get(s)}
        slowest = max(stages, key=lambda s: stages[s]["mean_ms"]) if stages else None
        out: dict[str, Any] = {
            "frames": {"processed": self.processed, "skipped": source.skipped if source else 0, "failed": self.failed,
                       "dropped": source.dropped if source else 0},
            "fps": round(self.fps, 3),
            "wall_s": round(self.elapsed, 3),
            "stages": stages,
            "end_to_end": percentiles(self.latency),
            "latency": percentiles(self.glass),
            "reconnects": 0,  # one source, read once: live sources reconnect in multi-stream runs (runtime.streams)
            "slowest_stage": slowest,
            "slowest_stage_fps": (round(1000.0 / stages[slowest]["mean_ms"], 3)
                                  if slowest and stages[slowest]["mean_ms"] else None),
            "errors": dict(self.errors),
            "notes": list(source.notes) if source else [],
        }
        out.update(extra)
        return out


class Pipeline:
    """Runs a :class:`Segmenter` over a :class:`Source` into sinks. ``keep_probs``: also return probabilities when
    the CRF is off (otherwise labels come straight from the logits); ``queue_size``: frames waiting between stages;
    ``max_in_flight``: frames between decoding and the outputs (4 keeps four stages busy at once without frames
    piling up in front of the slowest one, which would only add latency; None: bounded by the queues only)."""

    def __init__(self, segmenter: Segmenter, sinks: Sequence[Sink] = (), *, overlapped: bool = True,
                 queue_size: int = 2, max_in_flight: int | None = 4, keep_probs: bool = False) -> None:
        self.seg = segmenter
        self.sinks = list(sinks)
        self.overlapped = overlapped
        self.queue_size = max(1, queue_size)
        self.max_in_flight = max(1, max_in_flight) if max_in_flight else None
        self.keep_probs = keep_probs
        self.stats = Stats()
        self._previous: np.ndarray | None = None  # the last CRF result, for warm starts

    # -- stage functions (each fills its part of the item) --------------------------------------------------------
    def _preprocess(self, item: _Item) -> None:
        item.x, item.padding = self.seg.preprocess(item.frame.image)

    def _infer(self, item: _Item) -> None:
        item.logits = self.seg.infer_batch(item.x)[0]
        item.x = None

    def _upsample(self, item: _Item) -> None:
        if self.seg.crf is None and not self.keep_probs:
            item.labels = self.seg.labels(item.logits, item.padding)
        else:
            item.probs = self.seg.upsample(item.logits, item.padding)
        item.logits = None

    def _crf(self, item: _Item) -> None:
        previous = self._previous
        init = previous if self.seg.warm_start and previous is not None and previous.shape == item.probs.shape else None
        item.probs = self.seg.refine(item.frame.image, item.probs, init=init)
        self._previous = item.probs
        item.labels = self.seg.argmax(item.probs)

    def _output(self, item: _Item) -> None:
        if item.labels is None:
            item.labels = self.seg.argmax(item.probs)
        for sink in self.sinks:
            sink.write(item.frame, item.labels)

    def _stages(self) -> list[tuple[str, Callable[[_Item], None]]]:
        stages = [("preprocess", self._preprocess), ("infer", self._infer), ("upsample", self._upsample)]
        if self.seg.crf is not None:
            stages.append(("crf", self._crf))
        return stages + [("output", self._output)]

    @staticmethod
    def _apply(name: str, fn: Callable[[_Item], None], item: _Item) -> None:
        if item.error is not None:
            return
        t = time.perf_counter()
        try:
            fn(item)
        except BackendUnavailable:
            raise  # the server or device is gone: fatal, not a per-frame failure
        except FrameError as e:
            item.error = f"{name}: {e}"
        item.times[name] = time.perf_counter() - t

    def _result(self, item: _Item) -> Result:
        now = time.perf_counter()
        result = Result(item.frame, item.labels, item.probs, item.times, now - item.t0, item.error,
                        now - item.captured)
        self.stats.add(result)
        return result

    @staticmethod
    def _frames(source: Source, max_frames: int | None) -> Iterator[_Item]:
        frames = iter(source) if max_frames is None else itertools.islice(source, max_frames)
        for frame in frames:
            now = time.perf_counter()
            captured = frame.captured if frame.captured is not None else now  # else: the read time
            yield _Item(frame, now - frame.decode_s, captured, {"decode": frame.decode_s})

    # -- running --------------------------------------------------------------------------------------------------
    def run(self, source: Source, max_frames: int | None = None) -> Iterator[Result]:
        """Yield one :class:`Result` per frame, in order. The sinks are closed when the iteration ends, whatever
        ends it; ``self.stats`` holds the figures."""
        self.stats = Stats()
        self._previous = None
        try:
            yield from (self._run_overlapped if self.overlapped else self._run_sequential)(source, max_frames)
        finally:
            self.stats.end = time.perf_counter()
            for sink in self.sinks:
                sink.close()

    def _run_sequential(self, source: Source, max_frames: int | None) -> Iterator[Result]:
        stages = self._stages()
        for item in self._frames(source, max_frames):
            for name, fn in stages:
                self._apply(name, fn, item)
            yield self._result(item)

    def _run_overlapped(self, source: Source, max_frames: int | None) -> Iterator[Result]:
        stop = threading.Event()
        errors: list[BaseException] = []
        stages = self._stages()
        links = [queue.Queue(self.queue_size) for _ in range(len(stages) + 1)]

        def put(q: queue.Queue, item: Any) -> bool:
            while not stop.is_set():
                try:
                    q.put(item, timeout=0.05)
                    return True
                except queue.Full:
                    continue
            return False

        def get(q: queue.Queue) -> Any:
            while not stop.is_set():
                try:
                    return q.get(timeout=0.05)
                except queue.Empty:
                    continue
            return _END

        def guarded(body: Callable[[], None], out: queue.Queue) -> Callable[[], None]:
            def target() -> None:
                try:
                    body()
                except BaseException as e:  # noqa: BLE001 - fatal: stop everything, re-raised in the caller's thread
                    errors.append(e)
                    stop.set()
                finally:
                    put(out, _END)
            return target

        slots = threading.BoundedSemaphore(self.max_in_flight) if self.max_in_flight else None

        def decode() -> None:
            frames = self._frames(source, max_frames)
            while True:
                # With max_in_flight, the next frame is decoded only when one leaves: frames do not pile up in
                # front of a slow stage, which keeps the latency down at the same throughput.
                while slots is not None and not slots.acquire(timeout=0.05):
                    if stop.is_set():
                        return
                item = next(frames, None)
                if item is None or not put(links[0], item):
                    return

        def stage(name: str, fn: Callable[[_Item], None], q_in: queue.Queue, q_out: queue.Queue) -> None:
            last = q_out is links[-1]
            while (item := get(q_in)) is not _END:
                self._apply(name, fn, item)
                # The last stage records the frame as soon as its outputs are written, so the counts match the
                # files even when the caller stops before receiving this result.
                if last:
                    result = self._result(item)
                    if slots is not None:
                        slots.release()
                    if not put(q_out, result):
                        return
                elif not put(q_out, item):
                    return

        threads = [threading.Thread(target=guarded(decode, links[0]), name="decode", daemon=True)]
        threads += [threading.Thread(target=guarded(lambda n=n, f=f, i=i: stage(n, f, links[i], links[i + 1]),
                                                    links[i + 1]), name=n, daemon=True)
                    for i, (n, f) in enumerate(stages)]
        for t in threads:
            t.start()
        try:
            while (result := get(links[-1])) is not _END:
                yield result
        finally:
            stop.set()
            for t in threads:
                t.join(timeout=30)
        if errors:
            raise errors[0]
