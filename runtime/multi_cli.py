"""``deeplab-infer`` with several streams (``--source A --source B``, ``--sources FILE``, ``--serve``): the command
line over :class:`runtime.multistream.MultiStream`. Outputs go per stream: ``--output DIR`` → ``DIR/<name>.mp4``
(image sources: ``DIR/<name>/``), ``--masks DIR`` → ``DIR/<name>/``."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from runtime.atomic import atomic_write_text
from runtime.live_view import LiveBoard, LiveServer, parse_address
from runtime.multistream import MultiStream
from runtime.segmenter import Segmenter, crf_summary
from runtime.sinks import VIDEO_CODECS, MaskSink, OverlayImageSink, OverlayVideoSink, Sink
from runtime.streams import StreamReader, StreamSpec, parse_stream, read_sources_file, unique_names


def stream_specs(sources: list[str] | None, sources_file: str | None) -> list[StreamSpec]:
    """The streams of ``--source`` (repeatable) and ``--sources FILE``; ``demo`` when neither is given."""
    specs = [parse_stream(text) for text in sources or []]
    if sources_file:
        specs += read_sources_file(sources_file)
    return unique_names(specs or [parse_stream("demo")])


def is_multi(args: argparse.Namespace) -> bool:
    """Whether the run needs the multi-stream path (one plain --source keeps the single-stream pipeline)."""
    return bool(len(args.source or []) > 1 or args.sources or args.serve or args.duration is not None)


def check_args(args: argparse.Namespace) -> list[StreamSpec]:
    """The streams, once every multi-stream option was checked (before the model is loaded)."""
    specs = stream_specs(args.source, args.sources)
    if args.output and Path(args.output).suffix.lower() in VIDEO_CODECS:
        raise ValueError(f"with several streams --output is a directory (one <name>.mp4 per stream), "
                         f"not {Path(args.output).name}")
    if args.serve:
        parse_address(args.serve)
    if args.batch is not None and args.batch < 1:
        raise ValueError(f"--batch must be ≥ 1, got {args.batch}")
    return specs


def sink_factory(args: argparse.Namespace, board: LiveBoard | None):
    def make(name: str, reader: StreamReader) -> list[Sink]:
        sinks: list[Sink] = []
        if args.output:
            if reader.source is not None and reader.source.kind == "images":
                sinks.append(OverlayImageSink(Path(args.output) / name))
            else:
                sinks.append(OverlayVideoSink(Path(args.output) / f"{name}.mp4", reader.fps))
        if args.masks:
            sinks.append(MaskSink(Path(args.masks) / name))
        if board is not None:
            sinks.append(board.sink(name))
        return sinks
    return make


def format_table(summary: dict[str, Any]) -> str:
    """Per-stream rows (state, counts, fps, latency percentiles), then the aggregate and the errors."""
    head = (f"{'stream':<16}{'state':<13}{'processed':>10}{'dropped':>9}{'skipped':>9}{'failed':>8}{'reconn':>8}"
            f"{'fps':>8}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}")
    lines = [head]
    for name, s in summary["streams"].items():
        f, e = s["frames"], s["end_to_end"]
        lines.append(f"{name[:15]:<16}{s['state']:<13}{f['processed']:>10}{f['dropped']:>9}{f['skipped']:>9}"
                     f"{f['failed']:>8}{s['reconnects']:>8}{s['fps']:>8.1f}{e['p50_ms']:>9.1f}{e['p90_ms']:>9.1f}"
                     f"{e['p99_ms']:>9.1f}")
    a = summary["aggregate"]
    lines.append(f"all: {a['frames']['processed']} frames, {a['fps']:.1f} fps, p99 {a['end_to_end']['p99_ms']:.1f} ms; "
                 f"batches: mean {a['batch']['mean']:.2f} of at most {a['batch']['max']} "
                 f"({a['batch']['calls']} inference calls)")
    lines.append(f"backend: {summary['backend']} ({summary['backend_reason']})")
    for name, s in summary["streams"].items():
        lines += [f"{name}: ({count}×) {message}" for message, count in s["errors"].items()]
    return "\n".join(lines)


def run_multi(args: argparse.Namespace, seg: Segmenter, specs: list[StreamSpec]) -> int:
    """Run every stream until the files end (live streams: until Ctrl-C or --duration); 0 when some frame was
    processed, 130 after Ctrl-C, 1 when nothing could be processed."""
    from tqdm import tqdm

    address = parse_address(args.serve) if args.serve else None
    board = LiveBoard([s.name for s in specs]) if address else None
    multi = MultiStream(seg, specs, max_batch=args.batch, gather_ms=args.gather_ms, reconnect=args.reconnect,
                        stall_timeout=args.stall_timeout, duration=args.duration, sinks=sink_factory(args, board),
                        decoder=args.decoder)
    reason = seg.backend.reason
    server = None
    if board is not None and address is not None:
        server = LiveServer(board, lambda: multi.summary(backend=seg.backend.name), *address).start()
        print(f"live view: {server.url}", file=sys.stderr, flush=True)
    interrupted = False
    bar = tqdm(unit="frame", disable=True if args.no_progress else None, dynamic_ncols=True)
    results = multi.run()
    try:
        for _ in results:
            bar.update(1)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        results.close()  # stops every thread and finalizes every output, whatever ended the loop
        bar.close()
        if server is not None:
            server.stop()
        seg.close()
    summary = multi.summary(model=str(args.model), backend=seg.backend.name, backend_reason=reason, crf=crf_summary(seg.crf),
                            interrupted=interrupted)
    print(format_table(summary))
    if args.stats:
        Path(args.stats).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(args.stats, json.dumps(summary, indent=2))
    if interrupted:
        return 130
    if summary["aggregate"]["frames"]["processed"] == 0:
        print("error: nothing could be processed in any stream", file=sys.stderr)
        return 1
    return 0
