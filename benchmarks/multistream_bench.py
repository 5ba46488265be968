"""Multi-stream benchmark: 1, 2 and 4 streams, inference batched across streams against one frame per call.

    python benchmarks/multistream_bench.py                        # demo model, demo clip per stream, CRF off
    python benchmarks/multistream_bench.py --streams 1 2 4 --frames 30 --repeat 3 --crf --json multistream.json

Every stream is a file stream of the same clip (each frame processed, nothing dropped; by default the first
--frames frames of the demo video, rendered by demo.video into a temporary file), so both modes do the same work:
"batched" sends up to one frame per stream in one inference call (``MultiStream`` with max_batch = streams), "one at
a time" sends each frame alone (max_batch = 1) through the same scheduler, lanes and CRF; with 1 stream the two are
the same configuration (an A/A control: their difference is the run-to-run noise). Reported: aggregate fps over all
streams, the worst stream's p99 end-to-end latency, the mean batch, the batched / one-at-a-time fps ratio, and two
figures that a shared machine's load disturbs less than wall time: inference time per frame (the time of the
inference calls over the frames they served) and the process's CPU time per frame. Each configuration runs --repeat
times, alternating modes, and the median run (by fps) is kept. A table on stdout, JSON with --json.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from demo.video import write_video
from runtime.atomic import atomic_write_text
from runtime.multistream import MultiStream
from runtime.segmenter import Segmenter

MODES = ("one at a time", "batched")


def run_once(seg: Segmenter, source: str, streams: int, batched: bool) -> dict:
    multi = MultiStream(seg, [f"s{i}={source}" for i in range(streams)], max_batch=streams if batched else 1)
    cpu = os.times()
    for _ in multi.run():
        pass
    cpu_s = sum(os.times()[:2]) - sum(cpu[:2])  # user + system time of all threads of this process
    summary = multi.summary()
    a = summary["aggregate"]
    frames = max(1, a["frames"]["processed"])
    return {"fps": a["fps"], "frames": a["frames"]["processed"],
            "worst_p99_ms": max(s["end_to_end"]["p99_ms"] for s in summary["streams"].values()),
            "mean_batch": a["batch"]["mean"], "infer_p50_ms": a["infer"]["p50_ms"],
            "infer_ms_per_frame": round(a["infer"]["mean_ms"] * a["batch"]["calls"] / frames, 3),
            "cpu_ms_per_frame": round(1000 * cpu_s / frames, 3)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="demo", help="ONNX model or engine (default demo)")
    p.add_argument("--source", help="the video every stream plays (default: the demo video's first --frames frames)")
    p.add_argument("--frames", type=int, default=30, help="frames of the default clip (default 30)")
    p.add_argument("--streams", type=int, nargs="+", default=[1, 2, 4], help="stream counts to measure (default 1 2 4)")
    p.add_argument("--repeat", type=int, default=3, help="runs of each count, the median shown (default 3)")
    p.add_argument("--crf", action="store_true", help="with the model's CRF (default: off, inference is what batching "
                                                      "changes)")
    p.add_argument("--json", metavar="FILE", help="write the results here")
    args = p.parse_args(argv)

    seg = Segmenter(args.model, backend="onnxruntime", crf="default" if args.crf else None)
    with tempfile.TemporaryDirectory() as tmp:
        source = args.source or str(write_video(Path(tmp) / "clip.avi", args.frames, progress=False))
        rows = measure(seg, source, args.streams, args.repeat)
    print_table(rows)
    if args.json:
        info = {"model": args.model, "source": args.source or f"demo video, first {args.frames} frames",
                "crf": args.crf, "repeat": args.repeat, "cpus": os.cpu_count(), "machine": platform.machine(),
                "load_1min": os.getloadavg()[0],
                "median_fps_ratio": statistics.median(r["batched_over_single"] for r in rows)}
        atomic_write_text(args.json, json.dumps({"info": info, "rows": rows}, indent=2))
    return 0


def measure(seg: Segmenter, source: str, stream_counts: list[int], repeat: int) -> list[dict]:
    run_once(seg, source, 1, True)  # warm-up: ONNX Runtime's first calls, the CRF lattice
    rows = []
    for n in stream_counts:
        runs: dict[str, list[dict]] = {m: [] for m in MODES}
        for _ in range(repeat):
            for mode in MODES:
                runs[mode].append(run_once(seg, source, n, mode == "batched"))
        row = {"streams": n}
        for mode in MODES:
            median = sorted(runs[mode], key=lambda r: r["fps"])[len(runs[mode]) // 2]
            row[mode] = median
        row["batched_over_single"] = round(row["batched"]["fps"] / row["one at a time"]["fps"], 3)
        rows.append(row)
        print(f"{n} stream(s) done", file=sys.stderr)
    return rows


def print_table(rows: list[dict]) -> None:
    print("| streams | mode | aggregate fps | worst stream p99 | mean batch | inference per frame | CPU per frame "
          "| fps batched / one at a time |")
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        for mode in MODES:
            r = row[mode]
            ratio = f"{row['batched_over_single']:.2f}×" if mode == "batched" else ""
            print(f"| {row['streams']} | {mode} | {r['fps']:.1f} | {r['worst_p99_ms']:.0f} ms | {r['mean_batch']:.2f} | "
                  f"{r['infer_ms_per_frame']:.1f} ms | {r['cpu_ms_per_frame']:.0f} ms | {ratio} |")


if __name__ == "__main__":
    sys.exit(main())
