"""The live view (--serve): the page in a real browser (headless Chromium) shows every stream's overlay; the JSON
routes. Loopback addresses only."""
from __future__ import annotations

import json
import shutil
import subprocess
import urllib.error
import urllib.request

import cv2
import numpy as np
import pytest

from runtime import Segmenter
from runtime.live_view import LiveBoard, LiveServer, parse_address
from runtime.multistream import MultiStream
from runtime.sinks import overlay

pytestmark = pytest.mark.slow  # serves pages and runs a headless browser

pytest.importorskip("aiohttp", reason="the live view needs the 'serve' extra (aiohttp)")


def _get(url: str) -> tuple[int, bytes, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.read(), r.headers.get("Content-Type", "")
    except urllib.error.HTTPError as e:
        return e.code, e.read(), e.headers.get("Content-Type", "")


def _flat_images(directory, bgr, n=3):
    directory.mkdir()
    for i in range(n):
        cv2.imwrite(str(directory / f"f{i}.png"), np.full((120, 160, 3), bgr, np.uint8))
    return directory


@pytest.fixture
def served(tiny_onnx, tmp_path):
    """Two streams of flat images run to their end; the server stays up with their last overlays."""
    seg = Segmenter(tiny_onnx, crf=None)
    sources = {"left": _flat_images(tmp_path / "l", (200, 60, 40)), "right": _flat_images(tmp_path / "r", (40, 60, 200))}
    board = LiveBoard(list(sources), seg.meta.class_names)
    multi = MultiStream(seg, [f"{k}={v}" for k, v in sources.items()], sinks=lambda name, reader: [board.sink(name)])
    server = LiveServer(board, multi.summary, "127.0.0.1", 0).start()
    for _ in multi.run():
        pass
    # the overlay colour each card must show: the flat image blended with its label's palette colour
    expected = {}
    for name, bgr in (("left", (200, 60, 40)), ("right", (40, 60, 200))):
        image = np.full((120, 160, 3), bgr, np.uint8)
        expected[name] = overlay(image, seg.segment(image, return_probs=False)[0])[60, 80]
    yield server, expected
    server.stop()


def test_routes(served):
    server, _ = served
    status, body, kind = _get(server.url)
    assert status == 200 and "text/html" in kind and b"/stream/left.mjpg" in body and b"/stream/right.mjpg" in body
    status, body, kind = _get(server.url + "stats.json")
    stats = json.loads(body)
    assert status == 200 and stats["streams"]["left"]["frames"]["processed"] == 3
    assert set(stats["streams"]) == {"left", "right"} and "aggregate" in stats
    status, body, _ = _get(server.url + "healthz")  # every stream ended: none delivers frames
    assert status == 503 and json.loads(body)["streams"] == {"left": "ended", "right": "ended"}
    assert b"class1" in _get(server.url)[1]  # the colour legend names the classes
    status, body, kind = _get(server.url + "frame/left.jpg")
    assert status == 200 and kind == "image/jpeg" and cv2.imdecode(np.frombuffer(body, np.uint8), 1).shape == (120, 160, 3)
    assert _get(server.url + "frame/nobody.jpg")[0] == 404
    with urllib.request.urlopen(server.url + "stream/left.mjpg", timeout=10) as r:  # the first MJPEG part
        assert r.headers["Content-Type"].startswith("multipart/x-mixed-replace")
        head = r.read(200)
    assert head.startswith(b"--frame\r\nContent-Type: image/jpeg")


def test_address_parsing():
    assert parse_address("8080") == ("127.0.0.1", 8080)
    assert parse_address("0.0.0.0:9000") == ("0.0.0.0", 9000)
    assert parse_address("[::1]:9000") == ("::1", 9000)
    for bad in ("http", "1:2:x", "70000"):
        with pytest.raises(ValueError, match="--serve"):
            parse_address(bad)


@pytest.mark.skipif(shutil.which("chromium") is None, reason="headless Chromium (Debian package chromium) is absent")
def test_browser_shows_every_overlay(served, tmp_path):
    server, expected = served
    shot = tmp_path / "page.png"
    subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", "--window-size=760,480",
                    "--timeout=3000", server.url],
                   check=True, timeout=120, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    page = cv2.imread(str(shot))
    assert page is not None and page.shape[:2] == (480, 760)
    for name, colour in expected.items():
        close = np.abs(page.astype(int) - colour.astype(int)).max(axis=2) <= 12
        ys, xs = np.nonzero(close)
        # the card's image is drawn 320 px wide: a solid block of the overlay colour that size, in its own column
        assert close.sum() > 320 * 150 * 0.9, f"{name}: the overlay colour {colour} covers {close.sum()} px"
        assert xs.max() - xs.min() < 340 and ys.max() - ys.min() < 260
    left, right = (np.nonzero(np.abs(page.astype(int) - c.astype(int)).max(axis=2) <= 12)[1].mean()
                   for c in expected.values())
    assert left < right  # the cards in stream order


def test_health_follows_the_frames(tiny_onnx, clips, live_video_server):
    """/healthz: 503 before any frame, 200 while a stream delivers, 503 when none does any more."""
    seg = Segmenter(tiny_onnx, crf=None)
    camera = live_video_server(clips["a"], seconds=3.0, plan=(1.0, None))  # one pass, then refused
    board = LiveBoard(["cam"])
    multi = MultiStream(seg, [f"cam={camera.url}"], reconnect=False, sinks=lambda name, reader: [board.sink(name)])
    server = LiveServer(board, multi.summary, "127.0.0.1", 0).start()
    try:
        assert _get(server.url + "healthz")[0] == 503  # nothing has produced a frame yet
        codes = []
        for _ in multi.run():
            if not codes or codes[-1] != 200:
                codes.append(_get(server.url + "healthz")[0])
        assert 200 in codes
        status, body, _ = _get(server.url + "healthz")
        assert status == 503 and json.loads(body)["streams"] == {"cam": "ended"}
    finally:
        server.stop()


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("chromium") is None, reason="headless Chromium (Debian package chromium) is absent")
def test_page_loads_with_a_camera_down(tiny_onnx, tmp_path, unused_port):
    """A camera that never answers beside a stream that ended: the page and every MJPEG stream answer at once, the
    down camera's tile shows the placeholder picture, the ended stream keeps its last overlay, and the browser
    finishes loading the page."""
    seg = Segmenter(tiny_onnx, crf=None)
    flat = _flat_images(tmp_path / "l", (200, 60, 40))
    board = LiveBoard(["left", "down"], seg.meta.class_names)
    multi = MultiStream(seg, [f"left={flat}", f"down=rtsp://127.0.0.1:{unused_port}/x"],
                        sinks=lambda name, reader: [board.sink(name)])
    server = LiveServer(board, multi.summary, "127.0.0.1", 0).start()
    results = multi.run()
    try:
        for result in results:
            if result.stream == "left" and result.index == 2:
                break  # the image stream has ended; the camera keeps reconnecting
        for name in ("left", "down"):
            with urllib.request.urlopen(server.url + f"stream/{name}.mjpg", timeout=2) as r:
                head = r.read(200)
            assert head.startswith(b"--frame\r\nContent-Type: image/jpeg"), name
        status, body, _ = _get(server.url + "healthz")
        assert status == 503 and json.loads(body)["streams"]["down"] in ("connecting", "reconnecting")
        shot = tmp_path / "page.png"
        common = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                  f"--user-data-dir={tmp_path / 'profile'}"]
        dom = subprocess.run(common + ["--dump-dom", server.url], capture_output=True, text=True, timeout=60)
        assert "card-down" in dom.stdout and "legend" in dom.stdout  # the page finished loading
        subprocess.run(common + [f"--screenshot={shot}", "--window-size=760,480", "--timeout=3000", server.url],
                       check=True, timeout=120, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        page = cv2.imread(str(shot))
        image = np.full((120, 160, 3), (200, 60, 40), np.uint8)
        last = overlay(image, seg.segment(image, return_probs=False)[0])[60, 80]
        for colour, what in ((last, "the ended stream's last overlay"), (np.array([48, 48, 48]), "the placeholder")):
            close = np.abs(page.astype(int) - colour.astype(int)).max(axis=2) <= 12
            assert close.sum() > 320 * 150 * 0.8, f"{what} covers {close.sum()} px"
    finally:
        results.close()
        server.stop()
