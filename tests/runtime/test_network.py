"""Network sources for real: a video served over HTTP by a server on 127.0.0.1, and a connection that drops."""
from __future__ import annotations

import functools
import shutil
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest

from runtime import Segmenter
from runtime.pipeline import Pipeline
from runtime.sources import SourceError, VideoSource, open_source

pytestmark = pytest.mark.slow  # serves and decodes real streams


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


class DroppingHandler(QuietHandler):
    """Announces the whole file, sends 40 % of it, then drops the connection."""

    def do_GET(self):
        data = (self.directory_path / self.path.lstrip("/")).read_bytes()
        self.send_response(200)
        self.send_header("Content-Type", "video/x-msvideo")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data[: int(len(data) * 0.4)])
        self.wfile.flush()
        self.connection.close()


@pytest.fixture
def serve(tmp_path):
    servers = []

    def start(video, handler=QuietHandler):
        shutil.copy(video, tmp_path / video.name)
        handler = type("H", (handler,), {"directory_path": tmp_path})
        server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(tmp_path)))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/{video.name}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_http_video(serve, videos, tiny_onnx):
    url = serve(videos / "Megamind.avi")
    source = open_source(url)
    assert isinstance(source, VideoSource) and source.kind == "stream"
    pipe = Pipeline(Segmenter(tiny_onnx, crf=None))
    assert sum(1 for _ in pipe.run(source)) == 270


def test_dropped_connection_ends_cleanly(serve, videos, tiny_onnx):
    url = serve(videos / "Megamind.avi", DroppingHandler)
    t = time.perf_counter()
    source = open_source(url)
    n = sum(1 for _ in Pipeline(Segmenter(tiny_onnx, crf=None)).run(source))
    assert 0 < n < 270
    assert time.perf_counter() - t < 30


def test_unreachable_server():
    with pytest.raises(SourceError, match="cannot open stream"):
        open_source("http://127.0.0.1:9/none.mp4")  # the discard port: connection refused


# RTSP: ffmpeg (the Debian package) publishes the video; the runtime's reader (OpenCV's FFmpeg RTSP demuxer) runs in
# listen mode, since no RTSP server is packaged here. The protocol exchange (ANNOUNCE/SETUP/RECORD, RTP over TCP) and
# the decoding path are the real ones. decoder="ffmpeg": where GStreamer is installed, rtsp:// goes through it by
# default (tests/runtime/test_gst_source.py), and it has no listen mode.
needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None,
                                  reason="the ffmpeg command (Debian package ffmpeg) is absent")


def _rtsp_url(monkeypatch):
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("OPENCV_FFMPEG_CAPTURE_OPTIONS", "rtsp_flags;listen|rtsp_transport;tcp|listen_timeout;20")
    return f"rtsp://127.0.0.1:{port}/live"


def _publish(video, url, seconds, procs):
    """Start ffmpeg publishing ``video`` once the listener is up (retrying while the connection is refused)."""
    import subprocess

    def run():
        for _ in range(100):
            proc = subprocess.Popen(["ffmpeg", "-nostdin", "-loglevel", "error", "-re", "-i", str(video), "-t",
                                     str(seconds), "-c:v", "mpeg4", "-q:v", "5", "-f", "rtsp", "-rtsp_transport",
                                     "tcp", url], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            procs.append(proc)
            if proc.wait() <= 0:  # published (0) or killed by the test (negative): done; else the listener wasn't up
                return
            time.sleep(0.1)
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


@needs_ffmpeg
def test_rtsp_stream(monkeypatch, videos, tiny_onnx):
    url = _rtsp_url(monkeypatch)
    procs: list = []
    publisher = _publish(videos / "Megamind.avi", url, 3, procs)
    source = open_source(url, decoder="ffmpeg")
    assert source.kind == "stream"
    n = sum(1 for _ in Pipeline(Segmenter(tiny_onnx, crf=None)).run(source))
    publisher.join(10)
    assert 48 <= n <= 80  # 3 s at 24 fps


@needs_ffmpeg
def test_rtsp_publisher_killed(monkeypatch, videos, tiny_onnx):
    url = _rtsp_url(monkeypatch)
    procs: list = []
    _publish(videos / "Megamind.avi", url, 10, procs)
    source = open_source(url, decoder="ffmpeg")
    t = time.perf_counter()
    n = 0
    for _ in Pipeline(Segmenter(tiny_onnx, crf=None)).run(source):
        n += 1
        if n == 20:
            procs[-1].kill()  # the camera disappears mid-stream
    assert 20 <= n < 240 and time.perf_counter() - t < 30
