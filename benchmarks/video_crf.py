#!/usr/bin/env python3
"""The video CRF: accuracy against cost, and runtime/infer.py's throughput with and without it, in one run.

1. Accuracy: generated videos with ground truth (demo.video, as `python -m demo video --labels`; several seeds;
   motion speeds 1x, 2x, ... by keeping every k-th frame of a longer clip), written as MPEG-4 and decoded with OpenCV.
   The demo model's probabilities are computed once per frame; then every CRF variant runs over each video in order:
   cold (each frame from its own unary) and warm (from the previous frame's result), at full and at reduced resolution
   (the CRF's `scale`: mean field on the area-averaged image and probabilities, its message upsampled bilinearly onto
   the full-resolution unary), for several iteration counts. Reports the pooled video mIoU of each variant, its difference to per-frame cold 10 iterations, and its
   CRF time per frame (same run, all threads).
2. Throughput: runtime/infer.py on one generated video with its default CRF, with --no-crf, with 3 iterations at full
   and at half resolution (--crf-scale 1 / 0.5 --crf-iters 3) and with the per-image CRF (--crf-iters 10 without warm
   start), each in its own process: frames per second and the ratio to --no-crf.

    python benchmarks/video_crf.py [--json out.json] [--seeds 3 5 8] [--speeds 1 3] [--frames 15]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

import crf
from demo.video import write_video
from export.metrics import ConfusionMatrix
from export.voc import read_label
from runtime.atomic import atomic_write_text
from runtime.segmenter import Segmenter, crf_config, crf_summary

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Variant:
    name: str
    iterations: int | None  # None: no CRF
    warm: bool = False
    scale: float = 1.0


def variants() -> list[Variant]:
    out = [Variant("no CRF", None)]
    out += [Variant(f"cold {k} it.", k) for k in (2, 3, 5, 10)]
    out += [Variant(f"warm {k} it.", k, warm=True) for k in (3, 5)]
    out += [Variant(f"¾ scale cold {k} it.", k, scale=0.75) for k in (2, 3)]
    out += [Variant(f"½ scale cold {k} it.", k, scale=0.5) for k in (3, 5, 10)]
    out += [Variant(f"½ scale warm {k} it.", k, warm=True, scale=0.5) for k in (3,)]
    return out


def clip_frames(path: Path, labels_dir: Path, stride: int, count: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Every `stride`-th decoded frame (BGR) with its ground truth, `count` of them."""
    cap = cv2.VideoCapture(str(path))
    frames: list[tuple[np.ndarray, np.ndarray]] = []
    k = 0
    while len(frames) < count:
        ok, image = cap.read()
        if not ok:
            break
        if k % stride == 0:
            frames.append((image, read_label(labels_dir / f"{k:06d}.png")))
        k += 1
    cap.release()
    return frames


def accuracy(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    seg = Segmenter(args.model, backend="onnxruntime", crf=None)
    settings = crf_summary(crf_config("default", seg.meta)) or {}
    n_classes = seg.meta.n_classes
    vs = variants()
    cms = {(v.name, s): ConfusionMatrix(n_classes) for v in vs for s in args.speeds}
    seconds: dict[str, list[float]] = {v.name: [] for v in vs}
    w, h = args.size
    for seed in args.seeds:
        video, labels_dir = work / f"seed{seed}.mp4", work / f"seed{seed}_labels"
        write_video(video, count=args.frames * max(args.speeds), seed=seed, width=w, height=h,
                    labels_dir=labels_dir, progress=False)
        for speed in args.speeds:
            clip = clip_frames(video, labels_dir, speed, args.frames)
            print(f"seed {seed}, speed {speed}x: {len(clip)} frames", file=sys.stderr)
            probs_list = []
            for image, _ in clip:
                logits, padding = seg.infer(image)
                probs_list.append(seg.upsample(logits, padding))
            for v in vs:
                previous = None
                for (image, truth), probs in zip(clip, probs_list):
                    if v.iterations is None:
                        pred = probs.argmax(0)
                    else:
                        t0 = time.perf_counter()
                        q = crf.refine(image, probs, init=previous if v.warm else None,
                                       **{**settings, "iterations": v.iterations, "scale": v.scale})
                        seconds[v.name].append(time.perf_counter() - t0)
                        previous = q
                        pred = q.argmax(0)
                    cms[(v.name, speed)].update(truth, pred)
    seg.close()
    rows = []
    for v in vs:
        total = sum(cms[(v.name, s)].matrix for s in args.speeds)
        cm = ConfusionMatrix(n_classes)
        cm.matrix = total
        rows.append({"variant": v.name, "iterations": v.iterations, "warm": v.warm, "scale": v.scale,
                     "miou": cm.miou(), "miou_by_speed": {str(s): cms[(v.name, s)].miou() for s in args.speeds},
                     "crf_ms": 1e3 * statistics.median(seconds[v.name]) if seconds[v.name] else 0.0})
    ref = next(r["miou"] for r in rows if r["variant"] == "cold 10 it.")
    for r in rows:
        r["delta_vs_cold10"] = r["miou"] - ref
    return {"crf_settings": settings, "rows": rows}


def infer_fps(args: argparse.Namespace, video: Path, extra: list[str], work: Path, name: str) -> dict[str, Any]:
    stats = work / f"{name}.json"
    cmd = [sys.executable, str(ROOT / "runtime" / "infer.py"), "--model", args.model, "--source", str(video),
           "--output", str(work / f"{name}.mp4"), "--stats", str(stats), "--no-progress", *extra]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    summary = json.loads(stats.read_text())
    return {"fps": summary["fps"], "crf": summary.get("crf")}


def throughput(args: argparse.Namespace, work: Path) -> list[dict[str, Any]]:
    video = work / "throughput.mp4"
    write_video(video, count=args.throughput_frames, seed=args.seeds[0], width=args.size[0], height=args.size[1],
                progress=False)
    runs = [("default", []), ("--no-crf", ["--no-crf"]),
            ("--crf-scale 1 --crf-iters 3", ["--crf-scale", "1", "--crf-iters", "3"]),
            ("--crf-scale 0.5 --crf-iters 3", ["--crf-scale", "0.5", "--crf-iters", "3"]),
            ("--crf-iters 10 (per-image CRF)", ["--crf-iters", "10"])]
    fps: dict[str, list[float]] = {name: [] for name, _ in runs}
    crf_used: dict[str, Any] = {}
    for _ in range(args.repeats):  # interleaved, so all see the same machine load
        for i, (name, extra) in enumerate(runs):
            r = infer_fps(args, video, extra, work, f"run{i}")
            fps[name].append(r["fps"])
            crf_used[name] = r["crf"]
    base = statistics.median(fps["--no-crf"])
    return [{"run": name, "fps": statistics.median(fps[name]), "ratio_to_no_crf": statistics.median(fps[name]) / base,
             "crf": crf_used[name]} for name, _ in runs]


def size(text: str) -> tuple[int, int]:
    w, h = text.lower().split("x")
    return int(w), int(h)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="demo", help="ONNX model (default demo)")
    p.add_argument("--seeds", type=int, nargs="+", default=[3, 5, 8],
                   help="video seeds (default 3 5 8; the demo video is seed 7)")
    p.add_argument("--speeds", type=int, nargs="+", default=[1, 3], help="motion speeds, frame strides (default 1 3)")
    p.add_argument("--frames", type=int, default=15, help="frames per clip (default 15)")
    p.add_argument("--size", type=size, default=(384, 288), help="WIDTHxHEIGHT (default 384x288)")
    p.add_argument("--throughput-frames", type=int, default=60, help="frames of the throughput runs (default 60)")
    p.add_argument("--repeats", type=int, default=2,
                   help="runs of each infer.py configuration, medians shown (default 2)")
    p.add_argument("--json", type=Path, help="write the results here")
    args = p.parse_args()

    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="video_crf_") as tmp:
        acc = accuracy(args, Path(tmp))
        thr = throughput(args, Path(tmp))
    load_after = os.getloadavg()

    print(f"video CRF, model {args.model}, {len(args.seeds)} seeds x speeds {args.speeds} x {args.frames} frames at "
          f"{args.size[0]}x{args.size[1]}; CRF {acc['crf_settings']}; load average {load_before[0]:.2f} -> "
          f"{load_after[0]:.2f} on {os.cpu_count()} cores\n")
    speeds = " | ".join(f"mIoU {s}x" for s in args.speeds)
    print(f"| variant | video mIoU | vs cold 10 it. | {speeds} | CRF ms/frame |")
    print("|---|---|---|" + "---|" * len(args.speeds) + "---|")
    for r in acc["rows"]:
        by_speed = " | ".join(f"{100 * r['miou_by_speed'][str(s)]:.2f}" for s in args.speeds)
        print(f"| {r['variant']} | {100 * r['miou']:.2f} | {100 * r['delta_vs_cold10']:+.2f} | {by_speed} | "
              f"{r['crf_ms']:.1f} |")
    print(f"\nruntime/infer.py on a {args.throughput_frames}-frame video, median of {args.repeats}:\n")
    print("| run | fps | ratio to --no-crf |\n|---|---|---|")
    for r in thr:
        print(f"| {r['run']} | {r['fps']:.1f} | {r['ratio_to_no_crf']:.2f} |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(args.json, json.dumps({
            "seeds": args.seeds, "speeds": args.speeds, "frames": args.frames, "size": args.size,
            "cores": os.cpu_count(), "load_average": {"before": load_before, "after": load_after},
            "accuracy": acc, "throughput": thr}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
