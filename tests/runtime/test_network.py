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
