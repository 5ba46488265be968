"""Source benchmark: decoding the same H.264 files through FFmpeg-in-OpenCV and through GStreamer, and the latency of
the RTSP path.

    python benchmarks/source_bench.py                      # the reference videos (../shared/reference/videos)
    python benchmarks/source_bench.py --videos a.mp4 b.mkv --repeat 5 --rtsp-seconds 20 --json out.json

Decoding: every frame of each input to BGR, through ``open_source(..., decoder="ffmpeg")`` (OpenCV's FFmpeg) and
``decoder="gstreamer"`` (PyGObject: filesrc ! decodebin — avdec_h264 here, the hardware decoder where GStreamer ranks
one higher — ! videoconvert ! appsink), alternating, --repeat times; per input the median run's frames per second
(opening timed apart) and CPU time per frame (user + system of every thread of this process), and GStreamer's ratio to FFmpeg; worst and
median ratio over the inputs. The inputs: the reference videos that hold H.264 as they are, the others transcoded to
H.264 first (with the ffmpeg command, where it is installed).

RTSP: scripts/rtsp_server.py serves the first H.264 input on 127.0.0.1; the runtime's GStreamer source reads it for
--rtsp-seconds without further work; per frame, the time from its capture timestamp (the buffer's timestamp on the
pipeline clock: its arrival at the receiver here) to the moment it is in Python as BGR. Percentiles p50/p90/p99 and
the frames dropped. A table on stdout, JSON with --json.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from runtime import gst_source  # noqa: E402
from runtime.atomic import atomic_write_text  # noqa: E402
from runtime.pipeline import percentiles  # noqa: E402
from runtime.sources import open_source  # noqa: E402

REFERENCE_VIDEOS = ROOT.parent / "shared" / "reference" / "videos"


def codec(path: Path) -> str | None:
    """The video codec as ffprobe names it, or None without ffprobe."""
    if shutil.which("ffprobe") is None:
        return None
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "stream=codec_name",
                          "-of", "csv=p=0", str(path)], capture_output=True, text=True, timeout=60)
    return out.stdout.strip() or None


def h264_inputs(videos: list[Path], work: Path) -> list[Path]:
    """The videos holding H.264 as they are; the others transcoded to H.264 MP4 in ``work`` (needs ffmpeg)."""
    out = []
    for video in videos:
        if codec(video) == "h264":
            out.append(video)
        elif shutil.which("ffmpeg") is not None:
            target = work / f"{video.stem}.h264.mp4"
            subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-i", str(video), "-an", "-c:v",
                            "libx264", "-preset", "veryfast", "-crf", "20", "-pix_fmt", "yuv420p", str(target)],
                           check=True, timeout=600)
            out.append(target)
    return out


def decode(path: Path, decoder: str) -> dict:
    """Open (timed apart: GStreamer builds its pipeline and waits for the first frame) and read every frame."""
    t = time.perf_counter()
    source = open_source(path, decoder=decoder)
    cpu = os.times()
    t_open = time.perf_counter()
    frames = sum(1 for _ in source)
    wall = time.perf_counter() - t_open
    cpu_s = sum(os.times()[:2]) - sum(cpu[:2])
    source.close()
    return {"frames": frames, "open_ms": 1000 * (t_open - t), "fps": frames / wall,
            "cpu_ms_per_frame": 1000 * cpu_s / max(1, frames)}


def bench_decode(inputs: list[Path], repeat: int) -> list[dict]:
    rows = []
    for path in inputs:
        runs: dict[str, list[dict]] = {"ffmpeg": [], "gstreamer": []}
        for _ in range(repeat):
            for decoder in runs:  # alternating: a change of the machine's load hits both
                runs[decoder].append(decode(path, decoder))
        row: dict = {"input": path.name}
        for decoder, results in runs.items():
            median = sorted(results, key=lambda r: r["fps"])[len(results) // 2]
            row[decoder] = {k: round(v, 3) for k, v in median.items()}
        row["fps_ratio"] = round(row["gstreamer"]["fps"] / row["ffmpeg"]["fps"], 3)
        row["cpu_ratio"] = round(row["gstreamer"]["cpu_ms_per_frame"] / row["ffmpeg"]["cpu_ms_per_frame"], 3)
        rows.append(row)
    return rows


def bench_rtsp(video: Path, seconds: float) -> dict:
    server = subprocess.Popen([sys.executable, str(ROOT / "scripts" / "rtsp_server.py"), str(video), "--port", "0"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = server.stdout.readline().strip()
        if not url.startswith("rtsp://"):
            raise RuntimeError(f"the RTSP server did not start: {server.stderr.read().strip()}")
        source = open_source(url, decoder="gstreamer")
        ages = []
        start = time.monotonic()
        for frame in source:
            ages.append(time.perf_counter() - frame.captured)
            if time.monotonic() - start > seconds:
                break
        source.close()
        return {"url": url, "frames": len(ages), "dropped": source.dropped, "capture_to_bgr": percentiles(ages)}
    finally:
        server.terminate()
        server.wait(10)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    p.add_argument("--videos", nargs="+", type=Path, help="video files (default: every file in "
                                                          "../shared/reference/videos)")
    p.add_argument("--repeat", type=int, default=3, help="decoding runs per input and decoder; the median is kept "
                                                         "(default 3)")
    p.add_argument("--rtsp-seconds", type=float, default=15.0, help="how long the RTSP path is read (default 15; 0: "
                                                                    "skip it)")
    p.add_argument("--json", type=Path, help="also write the figures here")
    args = p.parse_args(argv)
    if gst_source.gst() is None:
        print(f"error: {gst_source.MISSING}", file=sys.stderr)
        return 1
    videos = args.videos or (sorted(v for v in REFERENCE_VIDEOS.iterdir() if v.is_file())
                             if REFERENCE_VIDEOS.is_dir() else [])
    missing = [str(v) for v in videos if not v.is_file()]
    if not videos or missing:
        print(f"error: no such video: {', '.join(missing) or REFERENCE_VIDEOS}", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as work:
        inputs = h264_inputs(videos, Path(work))
        if not inputs:
            print("error: none of the videos holds H.264, and ffmpeg is not installed to transcode them",
                  file=sys.stderr)
            return 1
        rows = bench_decode(inputs, max(1, args.repeat))
        served = next((v for v in inputs if v in videos), inputs[0])  # an input that was H.264 as it came
        rtsp = bench_rtsp(served, args.rtsp_seconds) if args.rtsp_seconds > 0 else None
    fps_ratios = [r["fps_ratio"] for r in rows]
    result = {"machine": f"{platform.machine()}, {os.cpu_count()} CPUs", "decode": rows,
              "fps_ratio": {"worst": min(fps_ratios), "median": round(statistics.median(fps_ratios), 3)},
              "cpu_ratio": {"worst": max(r["cpu_ratio"] for r in rows),
                            "median": round(statistics.median(r["cpu_ratio"] for r in rows), 3)},
              "rtsp": rtsp}
    print(f"{'input (H.264)':<28}{'frames':>7}{'FFmpeg fps':>12}{'GStreamer fps':>15}{'ratio':>7}"
          f"{'FFmpeg CPU ms/f':>17}{'GStreamer CPU ms/f':>20}{'ratio':>7}{'open ms F/G':>14}")
    for r in rows:
        f, g = r["ffmpeg"], r["gstreamer"]
        print(f"{r['input'][:27]:<28}{f['frames']:>7}{f['fps']:>12.1f}{g['fps']:>15.1f}{r['fps_ratio']:>7.2f}"
              f"{f['cpu_ms_per_frame']:>17.2f}{g['cpu_ms_per_frame']:>20.2f}{r['cpu_ratio']:>7.2f}"
              f"{f['open_ms']:>7.0f}/{g['open_ms']:<6.0f}")
    print(f"GStreamer/FFmpeg throughput: worst {result['fps_ratio']['worst']:.2f}, median "
          f"{result['fps_ratio']['median']:.2f}; CPU per frame: worst {result['cpu_ratio']['worst']:.2f}, median "
          f"{result['cpu_ratio']['median']:.2f} ({result['machine']})")
    if rtsp:
        c = rtsp["capture_to_bgr"]
        print(f"RTSP ({served.name} from {rtsp['url']}): {rtsp['frames']} frames, {rtsp['dropped']} dropped; "
              f"capture → BGR in Python p50 {c['p50_ms']:.1f} ms, p90 {c['p90_ms']:.1f} ms, p99 {c['p99_ms']:.1f} ms")
    if args.json:
        atomic_write_text(args.json, json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
