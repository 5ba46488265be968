"""The overlapped pipeline: same results as sequential, order kept, bounded memory, clean stops, counted failures."""
from __future__ import annotations

import threading
import time

import cv2
import numpy as np
import pytest
from PIL import Image

from runtime import Segmenter
from runtime.backends.base import BackendError, BackendUnavailable
from runtime.backends.ort import OnnxRuntimeBackend
from runtime.pipeline import Pipeline, percentiles
from runtime.sinks import MaskSink, OverlayVideoSink, Sink
from runtime.sources import Frame, Source


class ListSource(Source):
    """Frames from a list; counts how many were pulled (to observe back-pressure)."""

    def __init__(self, images):
        super().__init__("list")
        self.images = images
        self.total = len(images)
        self.pulled = 0

    def __iter__(self):
        for i, image in enumerate(self.images):
            self.pulled += 1
            yield Frame(i, f"{i:06d}", image)


def _frames(n, shape=(40, 56, 3)):
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, shape, dtype=np.uint8) for _ in range(n)]


@pytest.fixture(scope="module")
def seg(tiny_onnx):
    return Segmenter(tiny_onnx, crf=None)


def test_overlapped_equals_sequential_in_order(seg):
    images = _frames(12)
    results = {}
    for overlapped in (False, True):
        pipe = Pipeline(seg, overlapped=overlapped, keep_probs=True)
        out = list(pipe.run(ListSource(images)))
        assert [r.frame.index for r in out] == list(range(12))
        results[overlapped] = out
        summary = pipe.stats.summary()
        assert summary["frames"] == {"processed": 12, "skipped": 0, "failed": 0, "dropped": 0}
        for stage in ("decode", "preprocess", "infer", "upsample", "output"):
            assert set(summary["stages"][stage]) >= {"p50_ms", "p90_ms", "p99_ms"}
        assert summary["end_to_end"]["count"] == 12 and summary["fps"] > 0
        # no capture times from this source: glass to mask runs from the read, so it is within decode → outputs
        assert summary["latency"]["count"] == 12 and summary["latency"]["p99_ms"] <= summary["end_to_end"]["p99_ms"]
    for a, b in zip(results[False], results[True]):
        np.testing.assert_array_equal(a.labels, b.labels)
        np.testing.assert_array_equal(a.probs, b.probs)
        np.testing.assert_array_equal(a.labels, seg.segment(a.frame.image)[0])


def test_back_pressure_bounds_frames_in_flight(seg):
    source = ListSource(_frames(60))
    pipe = Pipeline(seg, queue_size=1, max_in_flight=None)
    in_flight = []
    for i, _ in enumerate(pipe.run(source)):
        time.sleep(0.01)  # a slow consumer
        in_flight.append(source.pulled - (i + 1))
    # 5 stage threads + decode, each holding one frame, plus one per queue (7 queues of size 1)
    assert max(in_flight) <= 6 + 7
    assert pipe.stats.processed == 60


@pytest.mark.parametrize("limit", [1, 2])
def test_max_in_flight(seg, limit):
    source = ListSource(_frames(30))
    pipe = Pipeline(seg, queue_size=1, max_in_flight=limit)
    in_flight = []
    for i, _ in enumerate(pipe.run(source)):
        time.sleep(0.005)
        in_flight.append(source.pulled - (i + 1))
    assert max(in_flight) <= limit + 1 + 1  # + the result waiting for the consumer, + the one being handed over
    assert pipe.stats.processed == 30


def test_max_frames_and_early_exit_close_sinks(seg, tmp_path):
    video = tmp_path / "out.mp4"
    pipe = Pipeline(seg, [OverlayVideoSink(video, 10), MaskSink(tmp_path / "masks")])
    run = pipe.run(ListSource(_frames(40)), max_frames=25)
    for i, _ in enumerate(run):
        if i == 9:
            break  # the consumer leaves (as on Ctrl-C): closing the generator finalizes the outputs
    run.close()
    assert video.is_file() and not list(tmp_path.glob(".out.*"))
    cap = cv2.VideoCapture(str(video))
    written = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    assert 10 <= written <= 25 and cap.read()[0]
    assert len(list((tmp_path / "masks").glob("*.png"))) == written


def test_keyboard_interrupt_leaves_a_playable_video(seg, tmp_path):
    video = tmp_path / "out.avi"
    pipe = Pipeline(seg, [OverlayVideoSink(video, 10)])
    with pytest.raises(KeyboardInterrupt):
        for i, _ in enumerate(pipe.run(ListSource(_frames(50)))):
            if i == 5:
                raise KeyboardInterrupt
    cap = cv2.VideoCapture(str(video))
    assert cap.isOpened() and int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) >= 6
    ok, frame = cap.read()
    assert ok and frame.shape == (40, 56, 3)


def test_frame_size_changing_mid_stream(seg, tmp_path):
    images = _frames(3, (40, 56, 3)) + _frames(3, (64, 48, 3)) + _frames(2, (41, 57, 3))
    video, masks = tmp_path / "v.mp4", tmp_path / "m"
    sink = OverlayVideoSink(video, 10)
    pipe = Pipeline(seg, [sink, MaskSink(masks)])
    out = list(pipe.run(ListSource(images)))
    assert [r.labels.shape for r in out] == [im.shape[:2] for im in images]
    assert sink.resized == 5 and sink.frames == 8
    mask = Image.open(masks / "000004.png")
    assert mask.mode == "P" and mask.size == (48, 64)
    np.testing.assert_array_equal(np.asarray(mask), out[4].labels)


def test_bad_frames_are_counted_and_skipped(seg):
    images = _frames(3) + [np.zeros((0, 5, 3), np.uint8)] + _frames(2)
    pipe = Pipeline(seg)
    out = list(pipe.run(ListSource(images)))
    assert len(out) == 6 and out[3].labels is None and "image is empty" in out[3].error
    assert pipe.stats.summary()["frames"] == {"processed": 5, "skipped": 0, "failed": 1, "dropped": 0}


class BrokenSink(Sink):
    def write(self, frame, labels):
        raise OSError("disk full")


@pytest.mark.parametrize("overlapped", [True, False])
def test_fatal_errors_stop_and_propagate(seg, overlapped):
    with pytest.raises(OSError, match="disk full"):
        list(Pipeline(seg, [BrokenSink()], overlapped=overlapped).run(ListSource(_frames(20))))
    assert not [t for t in threading.enumerate() if t.name in ("decode", "infer", "output")]


def test_percentiles():
    p = percentiles([0.001 * i for i in range(1, 101)])
    assert p["p50_ms"] == pytest.approx(50.5) and p["p99_ms"] == pytest.approx(99.01) and p["count"] == 100
    assert percentiles([])["count"] == 0


class _FailsOnFrame(OnnxRuntimeBackend):
    """The tiny model, raising ``error`` on the third inference."""

    def __init__(self, path, error):
        super().__init__(path)
        self.error, self.calls = error, 0

    def infer(self, batch):
        self.calls += 1
        if self.calls == 3:
            raise self.error
        return super().infer(batch)


@pytest.mark.parametrize("overlapped", [True, False])
def test_a_frame_error_is_counted_and_the_run_goes_on(tiny_onnx, overlapped):
    seg = Segmenter(_FailsOnFrame(tiny_onnx, BackendError("the server rejected this input")), crf=None)
    pipe = Pipeline(seg, overlapped=overlapped)
    out = list(pipe.run(ListSource(_frames(6))))
    assert [r.error for r in out] == [None, None, "infer: the server rejected this input", None, None, None]
    assert pipe.stats.summary()["frames"] == {"processed": 5, "skipped": 0, "failed": 1, "dropped": 0}


@pytest.mark.parametrize("overlapped", [True, False])
@pytest.mark.parametrize("error", [ValueError("operands could not be broadcast together"),
                                   BackendUnavailable("the server is gone")])
def test_a_bug_or_a_lost_backend_stops_the_run(tiny_onnx, overlapped, error):
    seg = Segmenter(_FailsOnFrame(tiny_onnx, error), crf=None)
    with pytest.raises(type(error), match=str(error)):
        list(Pipeline(seg, overlapped=overlapped).run(ListSource(_frames(20))))
    assert seg.backend.calls == 3
