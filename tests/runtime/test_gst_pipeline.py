"""The GStreamer pipeline builder (C++ deeplab::gst_pipeline through runtime._gst_pipeline): a pure function of the
URI and of the elements present, checked with the element sets of a Jetson, a desktop with NVIDIA's GStreamer plugins
and a plain Debian. No GStreamer needed."""
from __future__ import annotations

import pytest

from runtime import gst_source
from runtime.sources import SourceError, open_source
from runtime.streams import default_name, is_live

COMMON = {"appsink", "videoconvert", "filesrc", "decodebin", "rtspsrc", "rtph264depay", "rtph265depay", "h264parse",
          "h265parse", "v4l2src", "jpegdec"}
DEBIAN = COMMON | {"avdec_h264", "avdec_h265"}
DESKTOP_NVIDIA = DEBIAN | {"nvh264dec", "nvh265dec"}
JETSON = DEBIAN | {"nvarguscamerasrc", "nvvidconv", "nvv4l2decoder"}
LIVE_SINK = "appsink name=deeplab_appsink drop=true max-buffers=1 sync=false"
TO_BGR = "videoconvert ! video/x-raw,format=BGR ! "


@pytest.mark.parametrize("elements, decode", [
    (JETSON, "nvv4l2decoder ! nvvidconv ! video/x-raw,format=BGRx ! " + TO_BGR),
    (DESKTOP_NVIDIA, "nvh264dec ! " + TO_BGR),
    (DEBIAN, "avdec_h264 ! " + TO_BGR),
], ids=["jetson", "desktop-nvidia", "debian"])
def test_rtsp_picks_the_best_h264_decoder(elements, decode):
    built = gst_source.build("rtsp://10.0.0.2:554/live", elements)
    assert built == {"kind": "rtsp", "live": True, "own_sink": True, "pipeline":
                     'rtspsrc location="rtsp://10.0.0.2:554/live" latency=100 protocols=tcp ! rtph264depay ! '
                     "h264parse ! " + decode + LIVE_SINK}


@pytest.mark.parametrize("elements, decoder", [(JETSON, "nvv4l2decoder"), (DESKTOP_NVIDIA, "nvh265dec"),
                                               (DEBIAN, "avdec_h265")], ids=["jetson", "desktop-nvidia", "debian"])
def test_rtsp_options_and_h265(elements, decoder):
    pipeline = gst_source.build("rtsp://cam/main?channel=1&latency=0&transport=udp&codec=h265&subtype=0",
                                elements)["pipeline"]
    # latency/transport/codec are ours; the camera's own query parameters stay in its URL
    assert pipeline.startswith('rtspsrc location="rtsp://cam/main?channel=1&subtype=0" latency=0 protocols=udp ! '
                               "rtph265depay ! h265parse ! " + decoder + " ! ")


def test_rtsp_without_a_decoder_names_the_package():
    with pytest.raises(SourceError, match=r"^rtsp://h/x: decoding h264 needs the GStreamer element avdec_h264, from "
                                          r"gstreamer1.0-libav, which is not installed$"):
        gst_source.build("rtsp://h/x", COMMON)


def test_csi_on_a_jetson():
    built = gst_source.build("csi://1?width=1920&height=1080&framerate=60&flip=2", JETSON)
    assert built["live"] and built["kind"] == "csi"
    assert built["pipeline"] == ("nvarguscamerasrc sensor-id=1 ! video/x-raw(memory:NVMM),width=1920,height=1080,"
                                 "framerate=60/1,format=NV12 ! nvvidconv flip-method=2 ! video/x-raw,format=BGRx ! "
                                 + TO_BGR + LIVE_SINK)
    assert "width=1280,height=720,framerate=30/1" in gst_source.build("csi://0", JETSON)["pipeline"]


@pytest.mark.parametrize("elements", [DEBIAN, DESKTOP_NVIDIA], ids=["debian", "desktop-nvidia"])
def test_csi_elsewhere_fails_with_one_line(elements):
    with pytest.raises(SourceError) as e:
        gst_source.build("csi://0", elements)
    assert str(e.value) == ("csi://0: a CSI camera needs the GStreamer element nvarguscamerasrc, from JetPack's "
                            "GStreamer plugins (nvidia-l4t-gstreamer), which is not installed")


@pytest.mark.parametrize("uri, pipeline", [
    ("/dev/video0", 'v4l2src device="/dev/video0" ! video/x-raw ! ' + TO_BGR + LIVE_SINK),
    ("v4l2:///dev/video2?width=640&height=480&framerate=30",
     'v4l2src device="/dev/video2" ! video/x-raw,width=640,height=480,framerate=30/1 ! ' + TO_BGR + LIVE_SINK),
    ("v4l2:///dev/video1?format=mjpg&width=1280",
     'v4l2src device="/dev/video1" ! image/jpeg,width=1280 ! jpegdec ! ' + TO_BGR + LIVE_SINK),
])
def test_v4l2(uri, pipeline):
    for elements in (JETSON, DESKTOP_NVIDIA, DEBIAN):
        assert gst_source.build(uri, elements)["pipeline"] == pipeline


def test_gst_pipelines_get_an_appsink_unless_they_have_one():
    built = gst_source.build("gst: videotestsrc num-buffers=5 ! ", DEBIAN)
    assert built == {"kind": "gst", "live": False, "own_sink": True, "pipeline":
                     "videotestsrc num-buffers=5 ! " + TO_BGR + "appsink name=deeplab_appsink max-buffers=2 sync=false"}
    own = "videotestsrc ! videoconvert ! appsink name=mine"
    assert gst_source.build("gst:" + own, DEBIAN) == {"kind": "gst", "live": False, "own_sink": False,
                                                      "pipeline": own}
    assert gst_source.build("gst:fakesrc ! myappsink_x", DEBIAN)["own_sink"]  # a longer name is not an appsink


def test_files_through_decodebin_with_quoting():
    built = gst_source.build('file:/v/a "b".mp4', DEBIAN)
    assert built["pipeline"] == ('filesrc location="/v/a \\"b\\".mp4" ! decodebin ! ' + TO_BGR +
                                 "appsink name=deeplab_appsink max-buffers=2 sync=false")
    assert not built["live"]


@pytest.mark.parametrize("uri, message", [
    ("csi://x", "expected csi://N"),
    ("csi://0?width=0", "option width must be an integer in 1..8192, got '0'"),
    ("csi://0?fps=30", "unknown option 'fps' (width, height, framerate, flip)"),
    ("csi://0?flip=9", "option flip must be an integer in 0..7"),
    ("v4l2:///tmp/cam", "expected a V4L2 device such as v4l2:///dev/video0"),
    ("v4l2:///dev/video0?format=yuyv", "option format must be raw or mjpg, got 'yuyv'"),
    ("rtsp://h/x?transport=quic", "option transport must be tcp or udp, got 'quic'"),
    ("rtsp://h/x?codec=vp8", "option codec must be h264 or h265, got 'vp8'"),
    ("rtsp://h/x?latency=-1", "option latency must be an integer in 0..60000, got '-1'"),
    ("gst:  ! ", "expected gst:PIPELINE"),
])
def test_bad_uris_fail_with_one_line(uri, message):
    with pytest.raises(SourceError) as e:
        gst_source.build(uri, JETSON)
    assert str(e.value).startswith(f"{uri}: ") and message in str(e.value) and "\n" not in str(e.value)


def test_uri_kinds_names_and_liveness():
    assert [gst_source.is_gst_uri(u) for u in ("csi://0", "v4l2:///dev/video0", "/dev/video3", "gst:videotestsrc",
                                                "rtsp://h/x", "/dev/video", "/dev/videos", "0", "a.mp4")] == \
        [True, True, True, True, False, False, False, False, False]
    assert [is_live(u) for u in ("csi://0", "/dev/video0", "rtsp://h/x", "gst:videotestsrc", "a.mp4")] == \
        [True, True, True, False, False]
    assert [default_name(u) for u in ("csi://1?width=640", "v4l2:///dev/video2", "/dev/video0", "gst:videotestsrc")] \
        == ["csi1", "video2", "video0", "gst"]


def test_decoder_choice():
    assert gst_source.wants_gstreamer("csi://0", "auto", False)
    assert not gst_source.wants_gstreamer("gst:videotestsrc", "ffmpeg", False)
    with pytest.raises(SourceError, match=r"^csi://0: only GStreamer opens it, not --decoder ffmpeg$"):
        open_source("csi://0", decoder="ffmpeg")
    assert not gst_source.wants_gstreamer("/dev/video0", "ffmpeg", False)
    assert not gst_source.wants_gstreamer("rtsp://h/x", "ffmpeg", False)
    assert not gst_source.wants_gstreamer("clip.mp4", "auto", True)
    assert gst_source.wants_gstreamer("clip.mp4", "gstreamer", True)
    assert not gst_source.wants_gstreamer("http://h/clip.mp4", "gstreamer", False)
    assert gst_source.wants_gstreamer("rtsp://h/x", "auto", False) == gst_source.available()
    with pytest.raises(ValueError, match="--decoder must be one of auto, gstreamer, ffmpeg"):
        gst_source.wants_gstreamer("x", "vaapi", False)
