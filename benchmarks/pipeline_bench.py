"""Pipeline benchmark: per-stage times and end-to-end fps, sequential vs overlapped, on one model and source.

    python benchmarks/pipeline_bench.py                       # the demo model on the demo video, CRF on
    python benchmarks/pipeline_bench.py --model m.onnx --source video.mp4 --frames 100 --no-crf --json out.json

The sequential run executes the stages one after the other and gives each stage's own time; the overlapped run is
the production pipeline (one thread per stage, bounded queues). Target: overlapped throughput ≥ 90 % of
1/(slowest stage), the slowest stage timed in the sequential run. Where every stage runs on the same few CPU cores,
no schedule beats cores / (CPU time per frame), which is reported too. Each mode runs --repeat times, alternating, and the
median run of each is reported (the load of a shared machine changes during a run). A table on stdout, JSON with
--json.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from runtime.backends import BACKENDS
from runtime.pipeline import STAGES, Pipeline
from runtime.segmenter import Segmenter, crf_summary
from runtime.sinks import MaskSink, OverlayVideoSink
from runtime.sources import open_source

TARGET = 0.90


def run_once(seg: Segmenter, args: argparse.Namespace, overlapped: bool, out_dir: Path) -> dict:
    source = open_source(args.source)
    sinks = [] if args.no_outputs else [OverlayVideoSink(out_dir / f"overlay_{overlapped}.mp4", source.fps),
                                        MaskSink(out_dir / f"masks_{overlapped}")]
    pipe = Pipeline(seg, sinks, overlapped=overlapped, queue_size=args.queue_size,
                    max_in_flight=args.max_in_flight or None)
    cpu = os.times()
    for _ in pipe.run(source, args.frames):
        pass
    cpu_s = sum(os.times()[:2]) - sum(cpu[:2])  # user + system time of all threads of this process
    source.close()
    summary = pipe.stats.summary(source)
    summary["cpu_ms_per_frame"] = round(1000 * cpu_s / max(1, summary["frames"]["processed"]), 3)
    return summary


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="demo", help="ONNX model or engine (default demo)")
    p.add_argument("--source", default="demo", help="video, camera or images (default demo: the sample video)")
    p.add_argument("--backend", default="auto", choices=BACKENDS, help="inference backend (default auto)")
    p.add_argument("--frames", type=int, default=60, help="frames per run (default 60)")
    p.add_argument("--warmup", type=int, default=5, help="frames run first and not measured (default 5)")
    p.add_argument("--no-crf", action="store_true", help="labels straight from the upsampled logits")
    p.add_argument("--crf-iters", type=int, metavar="N",
                   help="mean-field iterations (default: the video default, docs/crf.md)")
    p.add_argument("--queue-size", type=int, default=2, help="frames buffered between two stages (default 2)")
    p.add_argument("--max-in-flight", type=int, default=4,
                   help="frames between decoding and the outputs (default 4; 0: bounded by the queues only)")
    p.add_argument("--repeat", type=int, default=3,
                   help="runs of each mode (alternating); the median run is shown (default 3)")
    p.add_argument("--no-outputs", action="store_true", help="no overlay video / mask PNGs")
    p.add_argument("--json", help="write the results here")
    args = p.parse_args(argv)

    seg = Segmenter(args.model, backend=args.backend, crf=None if args.no_crf else "default",
                    crf_iterations=args.crf_iters)
    runs: dict[bool, list[dict]] = {False: [], True: []}
    with tempfile.TemporaryDirectory() as tmp:
        out_dir = Path(tmp)
        warm = Pipeline(seg)
        for _ in warm.run(open_source(args.source), args.warmup):
            pass
        for _ in range(args.repeat):  # alternate, so a change of machine load hits both modes alike
            for overlapped in (False, True):
                runs[overlapped].append(run_once(seg, args, overlapped, out_dir))
    seg.close()
    sequential, overlapped = (sorted(runs[m], key=lambda r: r["fps"])[len(runs[m]) // 2] for m in (False, True))

    stages = sequential["stages"]
    slowest = max(stages, key=lambda s: stages[s]["mean_ms"])
    bound_fps = 1000.0 / stages[slowest]["mean_ms"]
    ratio = overlapped["fps"] / bound_fps
    print(f"model {args.model} · source {args.source} · {sequential['frames']['processed']} frames · "
          f"backend {seg.backend.name} · CRF {crf_summary(seg.crf) or 'off'} · {os.cpu_count()} CPU cores")
    print(f"{'stage':<12}{'sequential mean ms':>20}{'p90 ms':>10}{'overlapped mean ms':>20}")
    for name in STAGES:
        if name in stages:
            o = overlapped["stages"].get(name, {"mean_ms": 0.0})
            print(f"{name:<12}{stages[name]['mean_ms']:>20.2f}{stages[name]['p90_ms']:>10.2f}{o['mean_ms']:>20.2f}")
    print(f"{'end-to-end':<12}{sequential['end_to_end']['mean_ms']:>20.2f}{sequential['end_to_end']['p90_ms']:>10.2f}"
          f"{overlapped['end_to_end']['mean_ms']:>20.2f}")
    print(f"sequential {sequential['fps']:.2f} fps · overlapped {overlapped['fps']:.2f} fps "
          f"({overlapped['fps'] / sequential['fps']:.2f}× sequential) · 1/(slowest stage: {slowest}) = "
          f"{bound_fps:.2f} fps · overlapped = {100 * ratio:.1f} % of it (target ≥ {100 * TARGET:.0f} %: "
          f"{'met' if ratio >= TARGET else 'NOT met'})")
    cores = os.cpu_count() or 1
    cpu_bound = 1000.0 * cores / sequential["cpu_ms_per_frame"] if sequential["cpu_ms_per_frame"] else float("inf")
    print(f"CPU time per frame (all threads, sequential run): {sequential['cpu_ms_per_frame']:.1f} ms → with "
          f"{cores} cores no schedule exceeds {cpu_bound:.2f} fps; overlapped = "
          f"{100 * overlapped['fps'] / min(bound_fps, cpu_bound):.1f} % of min(1/slowest stage, cores/CPU time)")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "model": str(args.model), "source": args.source, "backend": seg.backend.name, "crf": crf_summary(seg.crf),
            "cpu_count": os.cpu_count(), "machine": platform.machine(),
            "repeat": args.repeat, "sequential": sequential, "overlapped": overlapped, "slowest_stage": slowest,
            "fps_all_runs": {"sequential": [r["fps"] for r in runs[False]],
                             "overlapped": [r["fps"] for r in runs[True]]},
            "bound_fps": round(bound_fps, 3), "overlapped_over_bound": round(ratio, 4), "target": TARGET,
            "cpu_bound_fps": round(cpu_bound, 3),
            "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
