"""A local RTSP server for tests, benchmarks and trying the runtime without a camera: serves an H.264 video file
(as stored, no re-encoding; looped) at rtsp://HOST:PORT/PATH through gst-rtsp-server (Debian:
gir1.2-gst-rtsp-server-1.0, gstreamer1.0-plugins-good/-bad, and gi in the venv: README, "Cameras on a Jetson").

    python scripts/rtsp_server.py ../shared/reference/videos/slow_traffic_small.mp4 --port 8554 --path /test

Prints ``rtsp://HOST:PORT/PATH`` once it listens (port 0: a free port), then serves until SIGTERM or Ctrl-C.
"""
from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    p.add_argument("video", help="an MP4/MOV/MKV file holding H.264")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8554, help="port (default 8554; 0: a free one)")
    p.add_argument("--path", default="/test", help="mount path (default /test)")
    args = p.parse_args(argv)
    video = Path(args.video).resolve()
    if not video.is_file():
        print(f"error: video not found: {args.video}", file=sys.stderr)
        return 1
    try:
        import gi
        gi.require_version("Gst", "1.0")
        gi.require_version("GstRtspServer", "1.0")
        from gi.repository import GLib, Gst, GstRtspServer
    except (ImportError, ValueError) as e:
        print(f"error: gst-rtsp-server through gi is not available ({e}): install gir1.2-gst-rtsp-server-1.0 and gi",
              file=sys.stderr)
        return 1
    Gst.init(None)
    location = str(video).replace("\\", "\\\\").replace('"', '\\"')
    factory = GstRtspServer.RTSPMediaFactory()
    # parsebin picks the demuxer for the container; the H.264 goes out as stored, one frame per frame interval.
    factory.set_launch(f'( filesrc location="{location}" ! parsebin ! h264parse config-interval=-1 '
                       '! rtph264pay name=pay0 pt=96 )')
    factory.set_shared(True)  # every client sees the same live stream, as with a camera
    server = GstRtspServer.RTSPServer()
    server.set_address(args.host)
    server.set_service(str(args.port))
    server.get_mount_points().add_factory(args.path, factory)
    loop = GLib.MainLoop()
    if server.attach(None) == 0:
        print(f"error: cannot listen on {args.host}:{args.port}", file=sys.stderr)
        return 1
    signal.signal(signal.SIGTERM, lambda *_: loop.quit())
    print(f"rtsp://{args.host}:{server.get_bound_port()}{args.path}", flush=True)
    try:
        loop.run()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
