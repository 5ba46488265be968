"""``deeplab-infer`` with several streams (``--source A --source B``, ``--sources FILE``, ``--serve``,
``--duration``): the command line over :class:`runtime.multistream.MultiStream`. Outputs go per stream (``runtime.run_outputs``):
``--output DIR`` → ``DIR/<name>.mp4`` (image sources: ``DIR/<name>/``), ``--masks DIR`` → ``DIR/<name>/``; a stream's
video is finalised when that stream ends."""
from __future__ import annotations

import argparse
import sys

from runtime.live_view import LiveBoard, LiveServer, parse_address
from runtime.multistream import MultiStream
from runtime.run_outputs import consume, finish, make_sinks, streams_table, write_stats
from runtime.palette import palette_of
from runtime.segmenter import Segmenter, crf_summary
from runtime.sinks import Sink
from runtime.streams import StreamReader, StreamSpec, parse_stream, read_sources_file, unique_names


def stream_specs(sources: list[str] | None, sources_file: str | None) -> list[StreamSpec]:
    """The streams of ``--source`` (repeatable) and ``--sources FILE``; ``demo`` when neither is given."""
    specs = [parse_stream(text) for text in sources or []]
    if sources_file:
        specs += read_sources_file(sources_file)
    return unique_names(specs or [parse_stream("demo")])


def is_multi(args: argparse.Namespace, specs: list[StreamSpec]) -> bool:
    """Whether the run needs the multi-stream path (one stream without --sources, --serve or --duration keeps the
    single-stream pipeline, with its per-stage figures)."""
    return bool(len(specs) > 1 or args.sources or args.serve or args.duration is not None)


def check_args(args: argparse.Namespace) -> None:
    """The multi-stream options, checked before the model is loaded."""
    if args.serve:
        parse_address(args.serve)


def run_multi(args: argparse.Namespace, seg: Segmenter, specs: list[StreamSpec]) -> int:
    """Run every stream until the files end (live streams: until Ctrl-C or --duration); 0 when some frame was
    processed, 130 after Ctrl-C, 1 when nothing could be processed."""
    address = parse_address(args.serve) if args.serve else None
    board = LiveBoard([s.name for s in specs], seg.meta.class_names) if address else None

    def sinks(name: str, reader: StreamReader) -> list[Sink]:
        kind = reader.source.kind if reader.source is not None else "video"
        made = make_sinks(args.output, args.masks, name, kind, reader.fps, seg.meta.class_names,
                          palette_of(seg.meta))
        return made + ([board.sink(name)] if board is not None else [])

    multi = MultiStream(seg, specs, max_batch=args.batch, gather_ms=args.gather_ms, reconnect=args.reconnect,
                        stall_timeout=args.stall_timeout, duration=args.duration, sinks=sinks,
                        max_frames=args.max_frames, queue_size=args.queue_size, sequential=args.sequential,
                        max_in_flight=args.max_in_flight or args.queue_size + 1, decoder=args.decoder)
    server = None
    if board is not None and address is not None:
        server = LiveServer(board, lambda: multi.summary(backend=seg.backend.name), *address).start()
        print(f"live view: {server.url}", file=sys.stderr, flush=True)
    try:
        interrupted = consume(multi.run(), not args.no_progress)
    finally:
        if server is not None:
            server.stop()
        seg.close()
    summary = multi.summary(model=str(args.model), backend=seg.backend.name, backend_reason=seg.backend.reason,
                            crf=crf_summary(seg.crf), interrupted=interrupted)
    print(streams_table(summary))
    written = [text for s in multi.streams.values() for text in (sink.describe() for sink in s.sinks or ()) if text]
    if args.stats:
        written.append(write_stats(args.stats, summary))
    failures = [m for s in summary["streams"].values() for m in s["errors"]]
    return finish(written, summary["aggregate"]["frames"]["processed"], interrupted,
                  failures[0] if failures else "no stream delivered a frame")
