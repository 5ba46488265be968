"""GStreamer sources on real GStreamer (PyGObject): gst: pipelines through videotestsrc, a camera that is not there,
and RTSP from a gst-rtsp-server on 127.0.0.1 serving a reference video as H.264 (scripts/rtsp_server.py): read
through infer.py with latency figures, a server stopped and restarted (reconnect counted), a slow consumer that drops
frames instead of queueing them. Skipped without gi/GStreamer locally; failed under CI."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from runtime import gst_source
from runtime.sources import SourceError, open_source

ROOT = Path(__file__).resolve().parents[2]
SERVER = ROOT / "scripts" / "rtsp_server.py"
INFER = ROOT / "runtime" / "infer.py"


def _rtsp_server_available() -> bool:
    try:
        import gi
        gi.require_version("GstRtspServer", "1.0")
        from gi.repository import GstRtspServer  # noqa: F401
    except (ImportError, ValueError):
        return False
    return True


@pytest.fixture(scope="module")
def gst():
    if gst_source.gst() is None:
        if os.environ.get("CI"):
            pytest.fail(gst_source.MISSING)
        pytest.skip("GStreamer through gi is not installed (README, 'Cameras on a Jetson')")
    return gst_source.gst()


def test_gst_videotestsrc_every_frame(gst):
    source = open_source("gst:videotestsrc num-buffers=12 pattern=ball ! video/x-raw,width=160,height=120,"
                         "framerate=30/1")
    assert source.kind == "pipeline" and not source.live and source.fps == 30
    frames = list(source)
    source.close()
    assert [f.index for f in frames] == list(range(12))  # a non-live pipeline: every frame, in order
    assert all(f.image.shape == (120, 160, 3) and f.image.dtype.name == "uint8" for f in frames)
    assert frames[0].image.std() > 0 and not (frames[0].image == frames[5].image).all()  # the ball moves
    assert source.dropped == 0 and not source.notes


def test_gst_odd_width_rows_unpadded(gst):
    # BGR rows of width 161 are padded to a multiple of 4 bytes in GStreamer's buffers: the image must not shear.
    source = open_source("gst:videotestsrc num-buffers=2 pattern=smpte ! video/x-raw,width=161,height=40")
    image = next(iter(source)).image
    source.close()
    assert image.shape == (40, 161, 3)
    assert (image[0] == image[20]).all()  # SMPTE bars: the upper rows are identical when nothing is shifted


def test_gst_live_pipeline_keeps_the_latest_frame(gst):
    source = open_source("gst:videotestsrc is-live=true ! video/x-raw,width=64,height=48,framerate=50/1")
    assert source.live and source.sink.get_property("max-buffers") == 1 and source.sink.get_property("drop")
    frames = iter(source)
    next(frames)
    time.sleep(0.5)  # a slow consumer: about 25 frames arrive meanwhile, one waits
    frame = next(frames)
    source.close()
    assert source.dropped >= 10
    assert time.perf_counter() - frame.captured < 0.4  # the frame read is a recent one, not the oldest


def test_bad_gst_pipeline_one_line(gst):
    with pytest.raises(SourceError, match=r"^gst:nosuchelement: not a usable GStreamer pipeline: no element "
                                          r"\"nosuchelement\"$"):
        open_source("gst:nosuchelement")


def _run(args: list[str], timeout: float = 120, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT, **kw)


def test_csi_without_a_camera_one_line(gst, tiny_onnx, tmp_path):
    r = _run([str(INFER), "--model", str(tiny_onnx), "--source", "csi://0", "--masks", str(tmp_path / "m")])
    assert r.returncode == 1
    lines = [line for line in r.stderr.splitlines() if not line.startswith("backend:")]
    assert lines == ["error: csi://0: a CSI camera needs the GStreamer element nvarguscamerasrc, from JetPack's "
                     "GStreamer plugins (nvidia-l4t-gstreamer), which is not installed"]


def test_missing_gstreamer_names_the_packages(tiny_onnx, tmp_path):
    code = ("import sys; sys.modules['gi'] = None; from runtime.infer import main; "
            f"sys.exit(main(['--model', {str(tiny_onnx)!r}, '--source', 'gst:videotestsrc', '--masks', "
            f"{str(tmp_path / 'm')!r}]))")
    r = _run(["-c", code])
    if gst_source.opencv_has_gstreamer():
        pytest.skip("this cv2 has GStreamer: it opens gst: pipelines without gi")
    assert r.returncode == 1
    lines = [line for line in r.stderr.splitlines() if not line.startswith("backend:")]
    assert len(lines) == 1 and lines[0].startswith("error: gst:videotestsrc: GStreamer is not available: install ")
    assert "python3-gi" in lines[0] and "gstreamer1.0-libav" in lines[0]


SYSTEM_PYTHON = Path("/usr/bin/python3")  # Debian's, with python3-opencv: an OpenCV built with GStreamer (as JetPack's)


def test_opencv_gstreamer_backend_without_gi(tmp_path):
    """Where gi is absent but cv2 has CAP_GSTREAMER, the same pipelines run through OpenCV. Debian's python3-opencv
    has it; the runtime is imported there from this checkout, with gi hidden."""
    from runtime import _gst_pipeline
    probe = "import sys, cv2; print(sys.version_info[:2], 'GStreamer: YES' in ' '.join(cv2.getBuildInformation().split()))"
    found = subprocess.run([str(SYSTEM_PYTHON), "-c", probe], capture_output=True, text=True, timeout=60) \
        if SYSTEM_PYTHON.exists() else None
    if found is None or found.returncode != 0 or not found.stdout.strip().endswith("True"):
        if os.environ.get("CI"):
            pytest.fail("Debian's python3-opencv (OpenCV with GStreamer) is missing: apt-get install python3-opencv")
        pytest.skip("no system Python with an OpenCV built with GStreamer (Debian: python3-opencv)")
    if found.stdout.split(")")[0] + ")" != str(sys.version_info[:2]):
        pytest.skip(f"the system Python is not {sys.version_info[:2]}: it cannot load this build's extension")
    code = f"""
import json, sys
sys.modules["gi"] = None
sys.path.insert(0, {str(ROOT)!r})
import runtime
runtime.__path__.append({str(Path(_gst_pipeline.__file__).parent)!r})
from runtime import gst_source
from runtime.sources import SourceError, open_source
source = open_source("gst:videotestsrc num-buffers=7 pattern=ball ! video/x-raw,width=160,height=120,framerate=30/1")
frames = list(source)
try:
    open_source("csi://0")
    error = None
except SourceError as e:
    error = str(e)
print(json.dumps({{"type": type(source).__name__, "gi": gst_source.gst() is not None, "frames": len(frames),
                  "shape": frames[0].image.shape, "std": float(frames[0].image.std()), "notes": source.notes,
                  "elements": sorted(gst_source.available_elements()), "error": error}}))
"""
    r = subprocess.run([str(SYSTEM_PYTHON), "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path,
                       env={**os.environ, "OPENCV_LOG_LEVEL": "OFF"})
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["type"] == "OpenCvGstSource" and not out["gi"]
    assert out["frames"] == 7 and out["shape"] == [120, 160, 3] and out["std"] > 0 and out["notes"] == []
    assert {"appsink", "videoconvert", "avdec_h264", "filesrc"} <= set(out["elements"])  # from gst-inspect-1.0
    assert out["error"].startswith("csi://0: a CSI camera needs the GStreamer element nvarguscamerasrc")


# -- RTSP -------------------------------------------------------------------------------------------------------------
class RtspServer:
    """scripts/rtsp_server.py in a subprocess: started, stopped and restarted on the same port."""

    def __init__(self, video: Path) -> None:
        self.video = video
        self.port = 0
        self.proc: subprocess.Popen | None = None
        self.url = ""

    def start(self) -> str:
        self.proc = subprocess.Popen([sys.executable, str(SERVER), str(self.video), "--port", str(self.port)],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
        line = self.proc.stdout.readline().strip()
        assert line.startswith("rtsp://127.0.0.1:"), self.proc.stderr.read() if self.proc.poll() is not None else line
        self.url = line
        self.port = int(line.rsplit(":", 1)[1].split("/")[0])
        return self.url

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


@pytest.fixture
def rtsp(gst, videos):
    if not _rtsp_server_available():
        if os.environ.get("CI"):
            pytest.fail("gst-rtsp-server through gi is missing: apt-get install gir1.2-gst-rtsp-server-1.0")
        pytest.skip("gst-rtsp-server through gi is missing (gir1.2-gst-rtsp-server-1.0)")
    server = RtspServer(videos / "slow_traffic_small.mp4")  # H.264, 640×360, 29.97 fps
    server.start()
    yield server
    server.stop()


@pytest.mark.slow
def test_rtsp_slow_consumer_drops_instead_of_queueing(rtsp):
    source = open_source(rtsp.url)
    assert type(source).__name__ == "GstSource" and source.kind == "stream" and source.live
    assert source.sink.get_property("max-buffers") == 1 and source.sink.get_property("drop")
    ages = []
    frames = iter(source)
    start = time.monotonic()
    for frame in frames:
        assert frame.image.shape == (360, 640, 3)
        ages.append(time.perf_counter() - frame.captured)
        if time.monotonic() - start > 4:
            break
        time.sleep(0.25)  # 4 fps against 30: a queue would grow by about 26 frames (0.9 s) a second
    source.close()
    assert len(ages) >= 8
    assert source.dropped >= 50  # counted as they are replaced
    # A queue would leave the last frames read several seconds old; dropping keeps them as fresh as the first ones.
    assert max(ages[-4:]) < 1.0


@pytest.mark.slow
def test_infer_rtsp_through_gstreamer_survives_a_server_restart(rtsp, tiny_onnx, tmp_path):
    stats = tmp_path / "stats.json"
    proc = subprocess.Popen([sys.executable, str(INFER), "--model", str(tiny_onnx), "--no-crf", "--source",
                             rtsp.url, "--duration", "14", "--stats", str(stats), "--no-progress"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        time.sleep(4)
        rtsp.stop()        # the camera goes away ...
        time.sleep(1.5)
        rtsp.start()       # ... and comes back on the same address
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    summary = json.loads(stats.read_text())
    stream = summary["streams"]["127.0.0.1-test"]
    assert stream["reconnects"] >= 1
    assert any("cannot open stream" in e or "end of stream" in e or "Could not" in e for e in stream["errors"])
    assert not any("stopped" in e for e in stream["errors"])  # the end of --duration is no error
    assert stream["frames"]["processed"] >= 20
    latency = stream["latency"]
    assert latency["count"] == stream["frames"]["processed"]
    assert 0 < latency["p50_ms"] <= latency["p90_ms"] <= latency["p99_ms"]
    assert summary["aggregate"]["latency"]["count"] == latency["count"]


@pytest.mark.slow
def test_infer_rtsp_live_view_shows_latency(rtsp, tiny_onnx):
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, str(INFER), "--model", str(tiny_onnx), "--no-crf", "--source",
                             rtsp.url, "--serve", str(port), "--no-progress"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        stats = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            time.sleep(1)
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/stats.json", timeout=5) as r:
                    stats = json.load(r)
            except OSError:
                continue
            if stats["streams"]["127.0.0.1-test"]["latency"]["count"] >= 5:
                break
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as r:
            page = r.read().decode()
    finally:
        proc.terminate()
        proc.communicate(timeout=30)
    stream = stats["streams"]["127.0.0.1-test"]
    assert stream["latency"]["count"] >= 5 and stream["latency"]["p99_ms"] > 0 and stream["reconnects"] == 0
    assert "glass to mask" in page and "st.latency" in page
