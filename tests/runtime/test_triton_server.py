"""A real Triton Inference Server (``tritonserver`` from nvidia-pytriton, CPU, Python backend) serving the repository
that ``python -m export triton`` writes, python DCNN variant: it loads, and frames sent over HTTP and gRPC come back
with the labels (and probabilities) of the in-process runtime. Loopback only; every server is stopped."""
from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tritonclient.http")
pytest.importorskip("tritonclient.grpc")

from export.triton import RepositoryOptions, write_repository
from export.triton_server import LocalTritonServer, TritonServerError, find_tritonserver, free_port
from runtime.backends import BackendError, open_backend
from runtime.backends.base import BackendUnavailable
from runtime.backends.triton import TritonBackend, TritonPipeline
from runtime.segmenter import Segmenter
from shared_data import REFERENCE, require

pytestmark = pytest.mark.slow  # starts tritonserver

try:
    find_tritonserver()
except TritonServerError as e:
    pytest.skip(str(e), allow_module_level=True)

REFERENCE_IMAGES = REFERENCE / "images"
PROTOCOLS = ("http", "grpc")


def _demo_onnx() -> Path | None:
    try:
        from demo import assets
    except ImportError:
        return None
    path = Path(assets.onnx_path())
    return path if path.is_file() else None


@pytest.fixture(scope="module")
def model(make_onnx, tmp_path_factory) -> Path:
    """The demo model when it is there, else the tiny stride-8 stand-in of tests/runtime/conftest.py."""
    return _demo_onnx() or make_onnx(tmp_path_factory.mktemp("model") / "tiny.onnx", n_classes=5)


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    """Real photos (../shared/reference/images, up to 4, halved to keep the CRF quick) and the demo video's first
    frames, else skip: the point is real images."""
    import cv2

    out = []
    for path in sorted(require(REFERENCE_IMAGES, "reference images").glob("*.jpg"))[:4]:
        image = cv2.imread(str(path))
        out.append(cv2.resize(image, (image.shape[1] // 2, image.shape[0] // 2), interpolation=cv2.INTER_AREA))
    try:
        from demo import assets

        cap = cv2.VideoCapture(str(assets.video_path()))
    except ImportError:
        cap = None
    for _ in range(2 if cap is not None and cap.isOpened() else 0):
        ok, frame = cap.read()
        if ok:
            out.append(frame)
    if cap is not None:
        cap.release()
    if not out:
        pytest.skip(f"no real frames: reference images not found at {REFERENCE_IMAGES} and no demo video")
    return out


@pytest.fixture(scope="module")
def repo(model, tmp_path_factory) -> Path:
    path, _ = write_repository(model, tmp_path_factory.mktemp("triton") / "repo",
                               RepositoryOptions(dcnn_backend="python", max_batch=4))
    return path


@pytest.fixture(scope="module")
def server(repo):
    with LocalTritonServer(repo) as s:
        yield s


@pytest.fixture(scope="module")
def local(model) -> Segmenter:
    """The in-process runtime with the defaults the repository uses (model's CRF preset)."""
    return Segmenter(str(model), backend="onnxruntime")


def test_repository_loads(server):
    import tritonclient.http as http

    client = http.InferenceServerClient(server.http_url)
    for name in ("deeplab", "deeplab_pre", "deeplab_dcnn", "deeplab_post"):
        assert client.is_model_ready(name), name
    client.close()


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_ensemble_labels_equal_in_process_runtime(server, local, frames, protocol):
    pipeline = TritonPipeline(server.url(protocol), protocol)
    try:
        for frame in frames:
            want_labels, want_probs = local.segment(frame)
            labels, probs = pipeline.segment(frame, probs=True)
            assert labels.shape == frame.shape[:2] and labels.dtype == want_labels.dtype
            np.testing.assert_array_equal(labels, want_labels)
            np.testing.assert_allclose(probs, want_probs, rtol=0, atol=1e-6)
            labels_only, none = pipeline.segment(frame)
            assert none is None
            np.testing.assert_array_equal(labels_only, want_labels)
    finally:
        pipeline.close()


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_triton_backend_in_a_segmenter(server, local, frames, protocol):
    """``--backend triton``: the network on the server, upsampling and CRF in process: the same labels."""
    backend = open_backend("demo", backend="triton", url=server.url(protocol), protocol=protocol)
    assert isinstance(backend, TritonBackend) and backend.meta == local.meta
    with Segmenter(backend) as remote:
        for frame in frames[:2]:
            np.testing.assert_array_equal(remote.segment(frame)[0], local.segment(frame)[0])


def test_batch_of_frames(server, local, frames):
    """N frames of one size in one request (what a multi-camera client sends); the server batches them."""
    import tritonclient.http as http

    batch = np.stack([frames[0], frames[0][::-1].copy(), frames[0][:, ::-1].copy()])
    client = http.InferenceServerClient(server.http_url)
    inp = http.InferInput("IMAGE", list(batch.shape), "UINT8")
    inp.set_data_from_numpy(batch)
    labels = client.infer("deeplab", [inp], outputs=[http.InferRequestedOutput("LABELS")]).as_numpy("LABELS")
    client.close()
    assert labels.shape == batch.shape[:3]
    for frame, got in zip(batch, labels):
        np.testing.assert_array_equal(got, local.segment(frame)[0])


@pytest.mark.parametrize("bad, message", [
    (np.zeros((0, 0, 3), np.uint8), "empty"),
    (np.zeros((16, 16, 4), np.uint8), "IMAGE"),
])
def test_bad_image_is_a_clear_error(server, bad, message):
    import tritonclient.http as http

    client = http.InferenceServerClient(server.http_url)
    inp = http.InferInput("IMAGE", [1, *bad.shape], "UINT8")
    inp.set_data_from_numpy(bad[None])
    with pytest.raises(Exception, match=message):
        client.infer("deeplab", [inp])
    client.close()
    assert server.is_ready(), "a bad request must not take the server down"


def test_metrics_count_requests(server, frames):
    def successes() -> int:
        for line in server.metrics().splitlines():
            if line.startswith('nv_inference_request_success{model="deeplab",'):
                return int(float(line.rsplit(" ", 1)[1]))
        return 0

    before = successes()
    pipeline = TritonPipeline(server.http_url, "http")
    for _ in range(3):
        pipeline.segment(frames[0])
    pipeline.close()
    assert successes() - before == 3


def test_unreachable_server_is_a_clear_error():
    url = f"127.0.0.1:{free_port()}"
    for protocol in PROTOCOLS:
        t0 = time.monotonic()
        with pytest.raises(BackendError, match=f"Triton server {url} \\({protocol}\\)"):
            TritonBackend(url=url, protocol=protocol, timeout_s=5)
        assert time.monotonic() - t0 < 10


def test_missing_model_is_a_clear_error(server):
    with pytest.raises(BackendError, match="no ready model 'nope'"):
        TritonBackend("nope", url=server.http_url)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_server_killed_mid_run(repo, frames, protocol):
    """A client streaming frames when the server dies gets a BackendError naming the server, promptly: no hang."""
    with LocalTritonServer(repo) as server:
        pipeline = TritonPipeline(server.url(protocol), protocol, timeout_s=20)
        done = threading.Event()
        outcome: dict[str, object] = {"frames": 0}

        def stream() -> None:
            try:
                while True:
                    pipeline.segment(frames[0])
                    outcome["frames"] = int(outcome["frames"]) + 1  # type: ignore[call-overload]
            except BackendError as e:
                outcome["error"] = e
            finally:
                done.set()

        worker = threading.Thread(target=stream, daemon=True)
        worker.start()
        deadline = time.monotonic() + 60
        while outcome["frames"] == 0 and not done.is_set() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert outcome["frames"], f"no frame came back before the kill: {outcome.get('error')}"
        server.kill()
        assert done.wait(30), "the client hung after the server died"
        pipeline.close()
    assert isinstance(outcome.get("error"), BackendUnavailable), "a dead server is not a per-frame error"
    error = str(outcome.get("error"))
    assert f"Triton server {server.url(protocol)} ({protocol})" in error and "failed" in error, error


def test_server_shutting_down_is_not_an_unknown_model(repo, frames):
    """SIGTERM: Triton unloads its models first while gRPC still answers, so requests meet "unknown model" (and its
    health checks "Server exiting"). The client says the server is shutting down and stops (BackendUnavailable)
    instead of failing frame after frame."""
    with LocalTritonServer(repo) as server:
        with Segmenter(open_backend("demo", backend="triton", url=server.grpc_url, protocol="grpc"),
                       crf=None) as segmenter:
            segmenter.segment(frames[0])
            server.process.terminate()
            with pytest.raises(BackendUnavailable) as e:
                for _ in range(2000):
                    segmenter.segment(frames[0])
    assert str(e.value) == (f"Triton server {server.grpc_url} (grpc) is shutting down (or not ready): inference on "
                            "'deeplab_dcnn' failed")


def test_infer_cli_stops_when_the_server_dies(repo, model, tmp_path):
    """``runtime/infer.py --backend triton`` on a long video: the server is killed mid-run; the CLI prints one error
    line naming the server and exits non-zero at once (instead of failing every remaining frame), outputs closed."""
    import subprocess
    import sys

    import cv2

    video = tmp_path / "long.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 25, (96, 64))
    rng = np.random.default_rng(0)
    for _ in range(3000):
        writer.write(rng.integers(0, 256, (64, 96, 3), dtype=np.uint8))
    writer.release()
    with LocalTritonServer(repo) as server:
        cmd = [sys.executable, "-m", "runtime.infer", "--model", str(model), "--backend", "triton",
               "--url", server.http_url, "--source", str(video), "--no-crf", "--no-progress",
               "--masks", str(tmp_path / "masks")]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 60
            while not list((tmp_path / "masks").glob("*.png")) and time.monotonic() < deadline:
                time.sleep(0.1)
            server.kill()
            out, err = proc.communicate(timeout=60)
        finally:
            proc.kill()
    assert proc.returncode == 1, (out, err)
    assert f"error: Triton server {server.http_url} (http)" in err, err
    assert 0 < len(list((tmp_path / "masks").glob("*.png"))) < 3000


@pytest.mark.parametrize("variant", ["onnxruntime_onnx", "tensorrt_plan"])
def test_gpu_variants_pass_the_servers_config_checks(variant, model, tmp_path):
    """This CPU server has no TensorRT or ONNX Runtime backend, so these variants cannot serve here; but the real
    server parses and validates every config, loads deeplab_pre and deeplab_post, and fails on nothing but the
    missing backend library of deeplab_dcnn."""
    source = model
    if variant == "tensorrt_plan":
        from runtime.engine_info import EngineInfo, write_sidecar

        meta = Segmenter(str(model), backend="onnxruntime", crf=None).meta
        source = tmp_path / "model.plan"
        source.write_bytes(b"an engine is only deserialized by the tensorrt backend")
        write_sidecar(source, meta, EngineInfo(tensorrt_version="10.3.0", gpu_name="Orin", compute_capability="8.7",
                                               precision="fp16", profile={"min": [1, 3, 64, 64],
                                                                          "opt": [1, 3, 512, 512],
                                                                          "max": [4, 3, 1024, 1024]}))
    repo, _ = write_repository(source, tmp_path / "repo", RepositoryOptions(dcnn_backend=variant))
    log = tmp_path / "server.log"
    with pytest.raises(TritonServerError):
        LocalTritonServer(repo, log_path=log, ready_timeout_s=60).start()
    text = log.read_text()
    backend = {"onnxruntime_onnx": "onnxruntime", "tensorrt_plan": "tensorrt"}[variant]
    assert f"failed to load 'deeplab_dcnn' version 1: Invalid argument: unable to find backend library for " \
           f"backend '{backend}'" in text
    for name in ("deeplab_pre", "deeplab_post"):
        assert f"successfully loaded '{name}'" in text, name
    failures = [line for line in text.splitlines() if "failed to load '" in line]
    assert all("'deeplab_dcnn'" in line for line in failures), failures


def _fixed_batch_copy(src: Path, dst: Path, n: int) -> Path:
    """``src`` with its batch dimension made static (N = ``n``), as an export with a fixed batch leaves it."""
    import onnx

    proto = onnx.load(str(src))
    for value in (*proto.graph.input, *proto.graph.output):
        value.type.tensor_type.shape.dim[0].dim_value = n
    onnx.save(proto, str(dst))
    return dst


@pytest.mark.parametrize("variant", ["fp16-io", "fixed-batch"])
def test_fp16_io_and_fixed_batch_models_load_and_serve(variant, model, frames, tmp_path):
    """An fp16-I/O model (`export fp16 --fp16-io`) and a model with a static N: the real server loads every model of
    the repository (types agree along the ensemble; max_batch_size 0 with full dims for the static N) and answers with
    the in-process runtime's labels, through the ensemble and through ``--backend triton``."""
    from export.fp16 import convert

    path = tmp_path / f"{variant}.onnx"
    if variant == "fp16-io":
        convert(model, path, keep_io_types=False)
    else:
        _fixed_batch_copy(model, path, 1)
    repo, _ = write_repository(path, tmp_path / "repo", RepositoryOptions(dcnn_backend="python", max_batch=4))
    local = Segmenter(str(path), backend="onnxruntime")
    with LocalTritonServer(repo) as server:
        pipeline = TritonPipeline(server.http_url, "http")
        try:
            for frame in frames[:2]:
                want_labels, want_probs = local.segment(frame)
                labels, probs = pipeline.segment(frame, probs=True)
                np.testing.assert_array_equal(labels, want_labels)
                np.testing.assert_allclose(probs, want_probs, rtol=0, atol=1e-6)
        finally:
            pipeline.close()
        backend = TritonBackend(url=server.http_url)
        with Segmenter(backend) as remote:
            np.testing.assert_array_equal(remote.segment(frames[0])[0], local.segment(frames[0])[0])
