"""deeplab-infer (python runtime/infer.py, python -m runtime.infer): segment a video, camera, stream or images with a
DeepLab v2 model.

    deeplab-infer --source demo --output out.mp4 --masks masks/ --stats stats.json

Errors are one line on stderr (a traceback only with --verbose); the exit status is non-zero only when nothing could
be processed. Ctrl-C stops cleanly with exit status 130: the output video and masks written so far are complete and
playable, and one line says what was kept.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any, Sequence

if not __package__:  # run as a file (python runtime/infer.py): make the repository's packages importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import crf
from runtime.atomic import atomic_write_text, make_dirs
from runtime.backends import BACKENDS
from runtime.cli_errors import error_text
from runtime.multi_cli import check_args, is_multi, run_multi
from runtime.pipeline import Pipeline
from runtime.segmenter import Segmenter
from runtime.sinks import VIDEO_CODECS, MaskSink, OverlayImageSink, OverlayVideoSink
from runtime.sources import ImageSource, open_source

log = logging.getLogger("runtime.infer")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="deeplab-infer", description=" ".join(__doc__.split("\n\n")[0].split()))
    p.add_argument("--model", default="demo",
                   help="ONNX model or TensorRT engine (default demo: the bundled demo model, which knows only the "
                        "generated demo shapes and gives meaningless labels on real footage; for your own video, "
                        "export your checkpoint: python -m export onnx CHECKPOINT -o model.onnx)")
    p.add_argument("--source", action="append", metavar="[NAME=]SOURCE",
                   help="video file, camera index, rtsp/http URL, image, directory or glob (default demo: the sample "
                        "video); repeat for several streams, NAME=SOURCE names one")
    p.add_argument("--sources", metavar="FILE", help="several streams: one [NAME=]SOURCE per line (# comments)")
    p.add_argument("--output", help="overlay video (.mp4/.mov/.m4v: H.264; .avi/.mkv: MJPEG), for any source; or, "
                                    "for image sources, a directory of overlay JPEGs")
    p.add_argument("--masks", metavar="DIR", help="write one palette label PNG per frame into DIR")
    p.add_argument("--backend", default="auto", choices=BACKENDS, help="inference backend (default auto)")
    p.add_argument("--url", help="Triton server HOST:PORT (with --backend triton; default 127.0.0.1:8000)")
    p.add_argument("--protocol", choices=("http", "grpc"), default="http", help="Triton protocol (default http)")
    group = p.add_argument_group("dense CRF")
    group.add_argument("--no-crf", action="store_true", help="labels straight from the upsampled logits")
    group.add_argument("--crf-preset", default="default", choices=("default", *crf.PRESETS),
                       help="CRF settings (default: the model's own preset if it has one, else voc)")
    group.add_argument("--crf-iters", type=int, metavar="N",
                       help="mean-field iterations (default: the preset's; on a video, a cheaper CRF, see docs/crf.md, "
                            "unless this or --warm-start is given)")
    group.add_argument("--crf-scale", type=float, metavar="S",
                       help="run the CRF at this fraction of the resolution, in (0, 1] (the video default: 0.75; "
                            "0.5: about 40 %% of full resolution's cost, about 0.6 mIoU points lower on the video "
                            "benchmark; docs/crf.md)")
    group.add_argument("--warm-start", action="store_true", help="start each frame's CRF from the previous result")
    group.add_argument("--crf-device", default="auto", choices=("auto", "cpu", "cuda"),
                       help="where the CRF runs (auto: the GPU when the upsampling runs there and the GPU CRF can; "
                            "cuda falls back to the CPU with one line where it cannot)")
    run = p.add_argument_group("run")
    run.add_argument("--max-frames", type=int, metavar="N", help="stop after N frames")
    run.add_argument("--stats", metavar="FILE.json", help="write per-stage and end-to-end latency percentiles, fps "
                                                          "and frame counts as JSON")
    run.add_argument("--upsample-device", choices=("auto", "cpu", "cuda"), default="auto",
                     help="where to upsample (cuda: NVRTC-compiled kernels; default auto: cuda with TensorRT, else "
                          "cpu)")
    run.add_argument("--sequential", action="store_true", help="run the stages one after the other (no overlap)")
    run.add_argument("--queue-size", type=int, default=2, metavar="N",
                     help="frames buffered between two stages (default 2)")
    run.add_argument("--max-in-flight", type=int, default=4, metavar="N",
                     help="at most N frames between decoding and the outputs (latency; default 4); 0 = bounded by the "
                          "queues only")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    multi = p.add_argument_group("several streams (with more than one --source, --sources, --serve or --duration)")
    multi.add_argument("--batch", type=int, metavar="N", help="frames per inference call across streams "
                                                            "(default: the number of streams, within the backend's limit)")
    multi.add_argument("--gather-ms", type=float, default=5.0, metavar="MS",
                       help="how long a batch waits for frames of other streams (default 5)")
    multi.add_argument("--duration", type=float, metavar="S", help="stop after S seconds (live streams run until Ctrl-C "
                                                                 "otherwise)")
    multi.add_argument("--stall-timeout", type=float, default=10.0, metavar="S",
                       help="a live stream without a frame for S seconds counts as stalled and reconnects (default 10)")
    multi.add_argument("--reconnect", action=argparse.BooleanOptionalAction, default=None,
                       help="reopen live streams that fail, with exponential backoff (default: network streams)")
    multi.add_argument("--serve", metavar="[HOST:]PORT", help="serve a live view (overlays and figures) on HOST "
                                                             "(default 127.0.0.1) and PORT")
    run.add_argument("-v", "--verbose", action="store_true", help="log details; tracebacks on errors")
    return p


def _sinks(args: argparse.Namespace, source) -> list:
    sinks: list = []
    if args.output:
        out = Path(args.output)
        if isinstance(source, ImageSource) and out.suffix.lower() not in VIDEO_CODECS:
            sinks.append(OverlayImageSink(out))
        else:  # an image sequence becomes a video too: frames of another size are resized to the first one's
            if out.suffix.lower() not in VIDEO_CODECS:
                raise ValueError(f"--output for a video source must be a video file ({', '.join(VIDEO_CODECS)}), "
                                 f"got {out}")
            sinks.append(OverlayVideoSink(out, source.fps))
    if args.masks:
        sinks.append(MaskSink(args.masks))
    return sinks


def describe_crf(settings: dict[str, Any] | None) -> str:
    """The CRF settings in one line: ``off``, or the base preset and what overrides it."""
    if settings is None:
        return "off"
    overrides = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                          for k, v in sorted(settings.items()) if k != "preset")
    return f"{settings.get('preset', 'voc')} preset" + (f" with {overrides}" if overrides else "")


def format_table(summary: dict[str, Any]) -> str:
    """The end-of-run table: per-stage and end-to-end percentiles, then counts and throughput."""
    rows = [(name, s) for name, s in summary["stages"].items()] + [("end-to-end", summary["end_to_end"])]
    lines = [f"{'stage':<12}{'p50 ms':>10}{'p90 ms':>10}{'p99 ms':>10}{'mean ms':>10}"]
    lines += [f"{name:<12}{s['p50_ms']:>10.2f}{s['p90_ms']:>10.2f}{s['p99_ms']:>10.2f}{s['mean_ms']:>10.2f}"
              for name, s in rows]
    f = summary["frames"]
    lines.append(f"frames: {f['processed']} processed, {f['skipped']} undecodable (skipped), {f['failed']} failed; "
                 f"{summary['fps']:.1f} fps overall ({summary['mode']}); slowest stage: {summary['slowest_stage']}")
    lines.append(f"backend: {summary['backend']}; CRF: {describe_crf(summary['crf'])}")
    lines += [f"note: {n}" for n in summary["notes"]]
    lines += [f"error ({count}×): {msg}" for msg, count in summary["errors"].items()]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    specs = check_args(args) if is_multi(args) else None  # bad entries fail before the model loads
    options: dict[str, Any] = {}
    if args.backend == "triton":
        options = {"protocol": args.protocol, **({"url": args.url} if args.url else {})}
    seg = Segmenter(args.model, backend=args.backend, crf=None if args.no_crf else args.crf_preset,
                    crf_iterations=args.crf_iters, crf_scale=args.crf_scale, warm_start=args.warm_start,
                    upsample_device=args.upsample_device, crf_device=args.crf_device, **options)
    if seg.crf_device_fallback:
        print(f"CRF: --crf-device cuda unavailable ({seg.crf_device_fallback}); falls back to the CPU", file=sys.stderr)
    reason = seg.backend.reason
    print(f"backend: {seg.backend.name} ({reason})", file=sys.stderr)
    if specs is not None:
        return run_multi(args, seg, specs)
    args.source = (args.source or ["demo"])[0]
    if not args.output and not args.masks:
        kept = f"only the table and {args.stats}" if args.stats else "only the table below"
        print(f"note: no --output or --masks: every frame is processed and nothing is written ({kept}); fine for "
              "timing a model, else add --output out.mp4 and/or --masks DIR", file=sys.stderr)
    source = open_source(args.source)
    if source.kind != "images":
        seg.use_video_crf()  # images keep the full CRF
    sinks = _sinks(args, source)
    pipeline = Pipeline(seg, sinks, overlapped=not args.sequential, queue_size=args.queue_size,
                        max_in_flight=args.max_in_flight or None)
    total = source.total if args.max_frames is None else min(source.total or args.max_frames, args.max_frames)
    interrupted = False
    bar = tqdm(total=total, unit="frame", disable=True if args.no_progress else None, dynamic_ncols=True)
    results = pipeline.run(source, args.max_frames)
    try:
        for _ in results:
            bar.update(1)
            bar.set_postfix(fps=f"{pipeline.stats.fps:.1f}", refresh=False)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        results.close()  # stops the stage threads and finalizes the outputs, whatever ended the loop
        bar.close()
        source.close()
        seg.close()
    summary = pipeline.stats.summary(
        source, mode="sequential" if args.sequential else "overlapped", model=str(args.model), source=args.source,
        backend=seg.backend.name, backend_reason=reason, crf=seg.crf, interrupted=interrupted)
    print(format_table(summary))
    written = [text for text in (sink.describe() for sink in sinks) if text]
    if args.stats:
        make_dirs(Path(args.stats).parent, args.stats)
        atomic_write_text(args.stats, json.dumps(summary, indent=2))
        written.append(str(args.stats))
    processed = summary["frames"]["processed"]
    if interrupted:
        kept = f"; kept {', '.join(written)}" if written else ""
        print(f"interrupted after {processed} frames{kept}", file=sys.stderr)
        return 130
    if processed == 0:
        first = next(iter(summary["errors"]), None) or (summary["notes"][0] if summary["notes"] else "no frames")
        print(f"error: nothing could be processed: {first}", file=sys.stderr)
        return 1
    if written:
        print(f"wrote {', '.join(written)}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not args.verbose:  # damaged streams make FFmpeg and OpenCV print a line per bad packet: we count them instead
        os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
        os.environ.setdefault("OPENCV_LOG_LEVEL", "OFF")
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s: %(message)s")
    if not args.verbose:  # the sources' notes (skipped frames, truncated files) are listed in the summary instead
        logging.getLogger("runtime.sources").setLevel(logging.ERROR)
    try:
        return run(args)
    except KeyboardInterrupt:  # before the first frame or while finishing: the outputs are closed by then
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as e:
        if args.verbose:
            raise
        print(f"error: {error_text(e)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
