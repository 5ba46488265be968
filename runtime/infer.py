"""deeplab-infer (python runtime/infer.py, python -m runtime.infer): segment a video, camera, stream or images with a
DeepLab v2 model.

    deeplab-infer --source demo --output out.mp4 --masks masks/ --stats stats.json

Errors are one line on stderr (a traceback only with --verbose); the exit status is non-zero only when nothing could
be processed. Ctrl-C stops cleanly with exit status 130: the output video and masks written so far are complete and
playable, and one line says what was kept.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any, Sequence

if not __package__:  # run as a file (python runtime/infer.py): make the repository's packages importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import crf
from runtime import named
from runtime.arg_types import fraction, non_negative_float, non_negative_int, positive_float, positive_int
from runtime.backends import BACKENDS
from runtime.cli_errors import error_text
from runtime.gst_source import DECODERS
from runtime.multi_cli import check_args, is_multi, run_multi, stream_specs
from runtime.pipeline import Pipeline
from runtime.run_outputs import check_outputs, consume, finish, make_sinks, stages_table, write_stats
from runtime.palette import palette_of
from runtime.segmenter import Segmenter, crf_summary
from runtime.sources import open_source, source_kind
from runtime.streams import SOURCES_GRAMMAR, StreamSpec

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
    p.add_argument("--sources", metavar="FILE", help=f"several streams from a file: {SOURCES_GRAMMAR}")
    p.add_argument("--decoder", choices=DECODERS, default="auto",
                   help="how sources are opened: auto (GStreamer for csi://N, v4l2:///dev/videoN, /dev/videoN, "
                        "gst:PIPELINE and, where installed, rtsp://; FFmpeg for files and HTTP), gstreamer (also files), "
                        "ffmpeg (OpenCV's FFmpeg and V4L2); README, \"Cameras on a Jetson\"")
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
    group.add_argument("--crf-iters", type=non_negative_int, metavar="N",
                       help="mean-field iterations (default: the preset's; on a video, a cheaper CRF, see docs/crf.md, "
                            "unless this or --warm-start is given)")
    group.add_argument("--crf-scale", type=fraction, metavar="S",
                       help="run the CRF at this fraction of the resolution, in (0, 1] (the video default: 0.75; "
                            "0.5: about 40 %% of full resolution's cost, about 0.6 mIoU points lower on the video "
                            "benchmark; docs/crf.md)")
    group.add_argument("--warm-start", action="store_true", help="start each frame's CRF from the previous result")
    group.add_argument("--crf-device", default="auto", choices=("auto", "cpu", "cuda"),
                       help="where the CRF runs (auto: the GPU when the upsampling runs there and the GPU CRF can; "
                            "cuda falls back to the CPU with one line where it cannot)")
    run = p.add_argument_group("run")
    run.add_argument("--max-frames", type=positive_int, metavar="N",
                     help="stop after N frames (with several streams: each stream after N)")
    run.add_argument("--stats", metavar="FILE.json", help="write per-stage and end-to-end latency percentiles, fps "
                                                          "and frame counts as JSON")
    run.add_argument("--upsample-device", choices=("auto", "cpu", "cuda"), default="auto",
                     help="where to upsample (cuda: NVRTC-compiled kernels; default auto: cuda with TensorRT, else "
                          "cpu)")
    run.add_argument("--sequential", action="store_true",
                     help="run the stages one after the other (no overlap; with several streams: one frame at a time "
                          "through inference and the outputs, batches of one)")
    run.add_argument("--queue-size", type=positive_int, default=2, metavar="N",
                     help="frames buffered between two stages (with several streams: frames a file stream reads "
                          "ahead; default 2)")
    run.add_argument("--max-in-flight", type=non_negative_int, default=4, metavar="N",
                     help="at most N frames between decoding and the outputs (latency; with several streams: per "
                          "stream; default 4); 0 = bounded by the queues only")
    run.add_argument("--no-progress", action="store_true", help="no progress bar (there is none when stderr is not a "
                                                                "terminal)")
    multi = p.add_argument_group("several streams (with more than one --source, --sources, --serve or --duration)")
    multi.add_argument("--batch", type=positive_int, metavar="N",
                       help="frames per inference call across streams (default: the number of streams, within the "
                            "backend's limit)")
    multi.add_argument("--gather-ms", type=non_negative_float, default=5.0, metavar="MS",
                       help="how long a batch waits for frames of other streams (default 5)")
    multi.add_argument("--duration", type=positive_float, metavar="S",
                       help="stop after S seconds (live streams run until Ctrl-C otherwise)")
    multi.add_argument("--stall-timeout", type=positive_float, default=10.0, metavar="S",
                       help="a live stream without a frame for S seconds counts as stalled and reconnects (default 10)")
    multi.add_argument("--reconnect", action=argparse.BooleanOptionalAction, default=None,
                       help="reopen live streams that fail, with exponential backoff (default: network streams)")
    multi.add_argument("--serve", metavar="[HOST:]PORT", help="serve a live view (overlays and figures) on HOST "
                                                             "(default 127.0.0.1) and PORT")
    run.add_argument("-v", "--verbose", action="store_true", help="log details; tracebacks on errors")
    return p


def warn_demo_model(model: str, specs: list[StreamSpec]) -> None:
    """Once per run: the bundled demo model on anything but the bundled demo video gives meaningless labels."""
    if not named.is_name(model):
        return
    try:
        demo_video = str(named.resolve(model, "video"))
    except (named.NamedFileError, ValueError):
        demo_video = None
    others = [s.source for s in specs if not (named.is_name(s.source) or s.source == demo_video)]
    if others:
        more = f" (and {len(others) - 1} more)" if len(others) > 1 else ""
        print(f"warning: the {model} model knows only the generated demo shapes: its labels on {others[0]}{more} "
              "are meaningless; for your own video, export your checkpoint: python -m export onnx CHECKPOINT -o "
              "model.onnx", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    specs = stream_specs(args.source, args.sources)  # bad entries fail before the model loads
    several = is_multi(args, specs)
    if several:
        check_args(args)
    check_outputs(args.output, args.masks, args.stats, several)
    options: dict[str, Any] = {}
    if args.backend == "triton":
        options = {"protocol": args.protocol, **({"url": args.url} if args.url else {})}
    # A video's frames get the video CRF (unless iterations, a scale or warm start are given); images the full one.
    video = any(source_kind(s.source) != "images" for s in specs)
    seg = Segmenter(args.model, backend=args.backend, crf=None if args.no_crf else args.crf_preset,
                    crf_iterations=args.crf_iters, crf_scale=args.crf_scale, warm_start=args.warm_start,
                    upsample_device=args.upsample_device, video=video, crf_device=args.crf_device, **options)
    if seg.crf_device_fallback:
        print(f"CRF: --crf-device cuda unavailable ({seg.crf_device_fallback}); falls back to the CPU", file=sys.stderr)
    reason = seg.backend.reason
    print(f"backend: {seg.backend.name} ({reason})", file=sys.stderr)
    warn_demo_model(str(args.model), specs)
    if not args.output and not args.masks and not args.serve:
        kept = f"only the table and {args.stats}" if args.stats else "only the table below"
        print(f"note: no --output or --masks: every frame is processed and nothing is written ({kept}); fine for "
              "timing a model, else add --output out.mp4 and/or --masks DIR", file=sys.stderr)
    if several:
        return run_multi(args, seg, specs)
    source_text = specs[0].source
    source = open_source(source_text, decoder=args.decoder)
    sinks = make_sinks(args.output, args.masks, None, source.kind, source.fps, seg.meta.class_names,
                       palette_of(seg.meta))
    pipeline = Pipeline(seg, sinks, overlapped=not args.sequential, queue_size=args.queue_size,
                        max_in_flight=args.max_in_flight or None)
    total = source.total if args.max_frames is None else min(source.total or args.max_frames, args.max_frames)
    try:
        interrupted = consume(pipeline.run(source, args.max_frames), not args.no_progress, total,
                              lambda: pipeline.stats.fps)
    finally:
        source.close()
        seg.close()
    summary = pipeline.stats.summary(
        source, mode="sequential" if args.sequential else "overlapped", model=str(args.model), source=source_text,
        backend=seg.backend.name, backend_reason=reason, crf=crf_summary(seg.crf), interrupted=interrupted)
    print(stages_table(summary))
    written = [text for text in (sink.describe() for sink in sinks) if text]
    if args.stats:
        written.append(write_stats(args.stats, summary))
    failure = next(iter(summary["errors"]), None) or (summary["notes"][0] if summary["notes"] else None)
    return finish(written, summary["frames"]["processed"], interrupted, failure)


def quiet_opencv() -> None:
    """Silence OpenCV's and FFmpeg's own warnings (a line per bad packet, per RTSP retry, per V4L2 probe): the run
    counts them and says them once, in its own words. Done before any capture opens (FFmpeg reads its level then)."""
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    os.environ.setdefault("OPENCV_LOG_LEVEL", "OFF")
    import cv2
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)  # cv2 is imported already: the variable is late


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not args.verbose:
        quiet_opencv()
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


__all__ = ["build_parser", "main", "run"]


if __name__ == "__main__":
    sys.exit(main())
