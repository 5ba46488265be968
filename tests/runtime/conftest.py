"""Shared fixtures for the runtime tests: a tiny ONNX "segmentation model" built with onnx.helper (no torch), so the
runtime is tested end to end in milliseconds. It is a stride-8 8×8 convolution: 1/8-resolution logits like DeepLab."""
from __future__ import annotations

import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from demo.video import write_video
from runtime.metadata import ONNX_METADATA_KEY, ModelMeta
from shared_data import REFERENCE, require

VIDEOS = REFERENCE / "videos"


def make_tiny_onnx(path: Path, n_classes: int = 4, metadata: str | None = "valid", seed: int = 0,
                   align_corners: bool = False) -> Path:
    """Write a stride-8 conv model. ``metadata``: "valid", None (no deeplab key) or a raw string stored as is."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    weight = (rng.standard_normal((n_classes, 3, 8, 8)) * 0.01).astype(np.float32)
    bias = rng.standard_normal(n_classes).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["image", "w", "b"], ["logits"], kernel_shape=[8, 8], strides=[8, 8])],
        "tiny",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, "H", "W"])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", n_classes, "h", "w"])],
        [numpy_helper.from_array(weight, "w"), numpy_helper.from_array(bias, "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    if metadata == "valid":
        meta = ModelMeta(class_names=tuple(f"class{i}" for i in range(n_classes)), align_corners=align_corners,
                         extra={"crf": {"iterations": 2}})
        helper.set_model_props(model, {ONNX_METADATA_KEY: meta.to_json()})
    elif metadata is not None:
        helper.set_model_props(model, {ONNX_METADATA_KEY: metadata})
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="session")
def make_onnx():
    """The :func:`make_tiny_onnx` factory (test modules cannot import conftest under --import-mode=importlib)."""
    return make_tiny_onnx


@pytest.fixture(scope="session")
def tiny_onnx(tmp_path_factory) -> Path:
    return make_tiny_onnx(tmp_path_factory.mktemp("models") / "tiny.onnx")


@pytest.fixture(scope="session")
def videos() -> Path:
    return require(VIDEOS, "reference videos")


class LiveVideoServer:
    """Serves one video file over HTTP on 127.0.0.1 the way a network camera streams: paced (one pass over the file
    takes ``seconds``), close-delimited (no Content-Length: nothing to seek), one stream per connection.
    ``plan[k]``: the fraction of the file the k-th connection gets before the server drops it (the last entry
    repeats; None: that connection and every later one is refused with 503)."""

    def __init__(self, video: Path, seconds: float = 2.0, plan: tuple[float | None, ...] = (1.0,)) -> None:
        self.data = video.read_bytes()
        self.connections = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                k = server.connections
                server.connections += 1
                fraction = plan[min(k, len(plan) - 1)]
                if fraction is None:
                    self.send_error(503)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "video/x-msvideo")
                self.end_headers()
                end = int(len(server.data) * fraction)
                chunk = 8192
                pause = seconds * chunk / len(server.data)
                try:
                    for at in range(0, end, chunk):
                        self.wfile.write(server.data[at:min(at + chunk, end)])
                        self.wfile.flush()
                        time.sleep(pause)
                except (BrokenPipeError, ConnectionResetError):
                    pass
                self.close_connection = True

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/{video.name}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def live_video_server():
    """``start(video, seconds=..., plan=...)`` → a :class:`LiveVideoServer`, shut down after the test."""
    servers: list[LiveVideoServer] = []

    def start(video: Path, **kwargs) -> LiveVideoServer:
        servers.append(LiveVideoServer(video, **kwargs))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


@pytest.fixture(scope="session")
def clips(tmp_path_factory) -> dict[str, Path]:
    """Short generated videos (demo.video, AVI so that they stream over HTTP): two 160×120 clips and a 96×64 one."""
    d = tmp_path_factory.mktemp("clips")
    return {"a": write_video(d / "a.avi", 30, seed=1, width=160, height=120, progress=False),
            "b": write_video(d / "b.avi", 30, seed=2, width=160, height=120, progress=False),
            "small": write_video(d / "small.avi", 20, seed=3, width=96, height=64, progress=False)}


@pytest.fixture
def unused_port() -> int:
    """A TCP port on 127.0.0.1 where nothing listens: a camera that never answers."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
