"""Several streams in one process (runtime.multistream): batching across streams, faults that stay in their stream,
live sources that reconnect, and a bounded soak."""
from __future__ import annotations

import threading
import time
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np
import pytest

from runtime import Segmenter
from runtime.multistream import MultiStream
from runtime.sinks import Sink
from runtime.streams import ENDED, FAILED, RECONNECTING


def _collect(multi: MultiStream) -> dict[str, list]:
    out: dict[str, list] = defaultdict(list)
    for stream, index, labels, _ in multi.run():
        out[stream].append((index, labels))
    return out


def _stop_when(multi: MultiStream, condition, timeout: float) -> threading.Thread:
    """Call multi.stop() once condition() holds (or after timeout): live streams never end by themselves."""
    def watch() -> None:
        t = time.monotonic()
        while not condition() and time.monotonic() - t < timeout:
            time.sleep(0.1)
        multi.stop()
    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def test_batched_equals_one_at_a_time(tiny_onnx, clips, tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    for i in range(6):
        cv2.imwrite(str(images / f"im{i}.png"), rng.integers(0, 255, (120, 160, 3), np.uint8))
    sources = [f"a={clips['a']}", f"b={clips['b']}", f"small={clips['small']}", f"im={images}"]
    seg = Segmenter(tiny_onnx, crf=None)
    one = MultiStream(seg, sources, max_batch=1)
    single = _collect(one)
    many = MultiStream(seg, sources, max_batch=4, gather_ms=50)
    batched = _collect(many)
    assert one.summary()["aggregate"]["batch"]["mean"] == 1.0
    assert many.summary()["aggregate"]["batch"]["mean"] > 1.5  # frames of a, b and im (same size) shared calls
    assert {k: len(v) for k, v in single.items()} == {"a": 30, "b": 30, "small": 20, "im": 6}
    for name, results in single.items():
        assert [i for i, _ in batched[name]] == [i for i, _ in results] == list(range(len(results)))
        for (_, expected), (_, got) in zip(results, batched[name]):
            np.testing.assert_array_equal(got, expected)
    # and equal to the single-stream Segmenter, frame for frame
    cap = cv2.VideoCapture(str(clips["a"]))
    for _, labels in single["a"][:5]:
        ok, frame = cap.read()
        assert ok
        np.testing.assert_array_equal(labels, seg.segment(frame, return_probs=False)[0])


@pytest.mark.slow
def test_four_streams_with_faults(tiny_onnx, clips, videos, live_video_server):
    """Two generated videos, a damaged file and an HTTP stream that drops midway and comes back, all at once."""
    damaged = videos / "Megamind_bugy.avi"
    server = live_video_server(clips["a"], seconds=1.5, plan=(0.4, 1.0, None))
    multi = MultiStream(Segmenter(tiny_onnx, crf=None),
                        [f"gen1={clips['a']}", f"gen2={clips['b']}", f"damaged={damaged}", f"net={server.url}"],
                        stall_timeout=5, backoff=(0.2, 1.0))
    net = multi.streams["net"].counters
    files = [multi.streams[n].reader for n in ("gen1", "gen2", "damaged")]
    watcher = _stop_when(multi, lambda: all(r.done for r in files) and net.connections >= 2
                         and net.state == RECONNECTING, timeout=120)
    t = time.perf_counter()
    results = _collect(multi)
    watcher.join()
    assert time.perf_counter() - t < 120
    s = multi.summary()["streams"]
    # every frame of the healthy files, in order
    for name in ("gen1", "gen2"):
        assert [i for i, _ in results[name]] == list(range(30))
        assert s[name]["state"] == ENDED and s[name]["errors"] == {} and s[name]["frames"]["failed"] == 0
    # the damaged file: every decodable frame, its losses in its own counters
    f = s["damaged"]["frames"]
    assert f["processed"] + f["skipped"] == 270 and f["failed"] == 0 and s["damaged"]["state"] == ENDED
    # the network stream: dropped once, reconnected, every frame it delivered either processed or counted as dropped
    assert net.connections == 2 and s["net"]["reconnects"] >= 1
    n = s["net"]["frames"]
    assert n["processed"] + n["dropped"] == n["decoded"] and n["decoded"] > 30  # 40 % of the clip, then all of it
    assert any("ended or dropped" in e for e in s["net"]["errors"])
    indices = [i for i, _ in results["net"]]
    assert indices == sorted(indices) and len(set(indices)) == len(indices)  # numbering runs on across reconnects
    assert all(labels is not None for r in results.values() for _, labels in r)


def test_missing_source_among_good_ones(tiny_onnx, clips, tmp_path):
    multi = MultiStream(Segmenter(tiny_onnx, crf=None),
                        [f"good={clips['a']}", f"gone={tmp_path / 'nope.avi'}", "http://127.0.0.1:9/x.avi"],
                        reconnect=False)
    results = _collect(multi)
    s = multi.summary()
    assert len(results["good"]) == 30 and s["streams"]["good"]["state"] == ENDED
    assert s["streams"]["gone"]["state"] == FAILED and "source not found" in next(iter(s["streams"]["gone"]["errors"]))
    assert s["streams"]["127.0.0.1-x"]["state"] == FAILED
    assert sorted(s["aggregate"]["failed_streams"]) == ["127.0.0.1-x", "gone"]


def test_live_source_keeps_only_the_latest_frame(tiny_onnx, clips, live_video_server):
    """A consumer slower than the camera: the frames it could not take are dropped and counted, never queued."""
    class SlowSink(Sink):
        def write(self, frame, labels):
            time.sleep(0.1)  # 10 fps against a 60 fps stream

    server = live_video_server(clips["a"], seconds=0.5, plan=(1.0, None))
    multi = MultiStream(Segmenter(tiny_onnx, crf=None), [f"net={server.url}"], reconnect=False,
                        sinks=lambda name, reader: [SlowSink()])
    got = [result.index for result in multi.run()]
    n = multi.summary()["streams"]["net"]["frames"]
    assert n["dropped"] > 0 and n["processed"] == len(got) and n["processed"] + n["dropped"] == n["decoded"]
    assert got == sorted(got)


def test_max_batch_follows_the_backend(tiny_onnx, clips):
    seg = Segmenter(tiny_onnx, crf=None)
    assert seg.backend.max_batch is None  # ONNX Runtime, dynamic N
    seg.backend.max_batch = 2  # what a Triton model's max_batch_size or an engine profile's max N reports
    multi = MultiStream(seg, [str(clips["a"]), str(clips["b"]), str(clips["small"])], max_batch=8, gather_ms=20)
    _collect(multi)
    assert multi.max_batch == 2 and max(multi.batches) <= 2


def _rss_threads() -> tuple[int, int]:
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    return int(fields["VmRSS"].split()[0]), int(fields["Threads"])


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads RSS and threads from /proc (Linux)")
def test_soak_four_live_streams(tiny_onnx, clips, live_video_server):
    """About 60 s of 4 loopback streams that drop every 2 s and reconnect: memory and threads stay flat."""
    servers = [live_video_server(clips[k], seconds=2.0, plan=(1.0,)) for k in ("a", "b", "a", "b")]
    multi = MultiStream(Segmenter(tiny_onnx, crf=None), [f"s{i}={s.url}" for i, s in enumerate(servers)],
                        backoff=(0.1, 0.5), stall_timeout=3, duration=60)
    samples: list[tuple[float, int, int, int]] = []
    t0 = time.monotonic()
    for _ in multi.run():
        t = time.monotonic() - t0
        if not samples or t - samples[-1][0] > 5:
            ours = sum(1 for th in threading.enumerate() if "process_request" not in th.name)  # not the test's server
            samples.append((t, *_rss_threads(), ours))
    summary = multi.summary()
    warm = [s for s in samples if s[0] > 15]
    assert len(warm) >= 6, samples
    rss = [s[1] for s in warm]
    assert max(rss) - rss[0] < 20_000, f"RSS grew from {rss[0]} kB to {max(rss)} kB: {samples}"
    assert len({s[3] for s in warm}) == 1, f"Python threads changed: {samples}"
    assert max(s[2] for s in warm) - min(s[2] for s in warm) <= 8, f"threads changed: {samples}"
    assert all(s["reconnects"] >= 2 for s in summary["streams"].values()), summary["streams"]
    assert all(s["frames"]["processed"] >= 10 for s in summary["streams"].values()), summary["streams"]
