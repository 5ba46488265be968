"""What a ``deeplab-infer`` run writes and says, for one stream or several: the output paths checked before any work,
the sinks of each stream, the statistics file and the closing line with the exit status.

Layouts: with one stream ``--output`` is the video (or, for images, the directory of overlay JPEGs) and ``--masks``
the directory of label PNGs; with several, ``--output DIR`` holds ``<name>.mp4`` (images: ``<name>/``) and ``--masks
DIR`` holds ``<name>/``.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from runtime.atomic import atomic_write_text, check_writable, make_dirs
from runtime.sinks import VIDEO_CODECS, MaskSink, OverlayImageSink, OverlayVideoSink, Sink


def check_outputs(output: str | None, masks: str | None, stats: str | None, several: bool) -> None:
    """Before the model loads: each output can be written where it was asked for (one line naming the path and the
    reason otherwise: a read-only place, a parent that is a file)."""
    if output:
        out = Path(output)
        video = out.suffix.lower() in VIDEO_CODECS
        if several and video:
            raise ValueError(f"with several streams --output is a directory (one <name>.mp4 per stream), "
                             f"not {out.name}")
        check_writable(out, directory=not video)
    if masks:
        check_writable(masks, directory=True)
    if stats:
        check_writable(stats)


def make_sinks(output: str | None, masks: str | None, name: str | None, kind: str, fps: float | None,
               class_names: Sequence[str] | None = None, palette: np.ndarray | None = None) -> list[Sink]:
    """The sinks of one stream: ``name`` None for the one-stream layout, else the stream's name in the several-stream
    layout; ``kind``: the source's (``images`` keeps overlay JPEGs unless a video file is asked for); ``palette``: the
    model's colours (:func:`runtime.palette.palette_of`)."""
    sinks: list[Sink] = []
    if output:
        out = Path(output)
        if name is None:
            if kind == "images" and out.suffix.lower() not in VIDEO_CODECS:
                sinks.append(OverlayImageSink(out, class_names, palette))
            elif out.suffix.lower() not in VIDEO_CODECS:
                raise ValueError(f"--output for a video source must be a video file ({', '.join(VIDEO_CODECS)}), "
                                 f"got {out}")
            else:  # an image sequence becomes a video too: frames of another size are resized to the first one's
                sinks.append(OverlayVideoSink(out, fps, class_names, palette))
        elif kind == "images":
            sinks.append(OverlayImageSink(out / name, class_names, palette))
        else:
            sinks.append(OverlayVideoSink(out / f"{name}.mp4", fps, class_names, palette))
    if masks:
        sinks.append(MaskSink(masks if name is None else Path(masks) / name, palette))
    return sinks


def write_stats(path: str, summary: dict[str, Any]) -> str:
    """Write the run's figures as JSON (atomically); returns the path, for the closing line."""
    make_dirs(Path(path).parent, path)
    atomic_write_text(path, json.dumps(summary, indent=2, default=str))
    return str(path)


def consume(results: Iterator[Any], progress: bool, total: int | None = None,
            fps: Callable[[], float] | None = None) -> bool:
    """Run a scheduler's results to their end with a progress bar (on a terminal only, and unless ``progress`` is
    off); True when Ctrl-C ended them. Whatever ends the loop, ``results.close()`` stops the threads and finalises
    the outputs before this returns (an error is raised after that)."""
    from tqdm import tqdm

    bar = tqdm(total=total, unit="frame", disable=None if progress else True, dynamic_ncols=True)
    try:
        for _ in results:
            bar.update(1)
            if fps is not None:
                bar.set_postfix(fps=f"{fps():.1f}", refresh=False)
    except KeyboardInterrupt:
        return True
    finally:
        try:
            results.close()  # type: ignore[attr-defined]
        finally:
            bar.close()
    return False


def finish(written: list[str], processed: int, interrupted: bool, failure: str | None) -> int:
    """Say how the run ended and return the exit status: 130 with ``interrupted after N frames; kept …`` after
    Ctrl-C, 1 with ``error: nothing could be processed: …`` when no frame was, else 0 with ``wrote …``."""
    if interrupted:
        kept = f"; kept {', '.join(written)}" if written else ""
        print(f"interrupted after {processed} frames{kept}", file=sys.stderr)
        return 130
    if processed == 0:
        print(f"error: nothing could be processed: {failure or 'no frames'}", file=sys.stderr)
        return 1
    if written:
        print(f"wrote {', '.join(written)}")
    return 0


def describe_crf(settings: dict[str, Any] | None) -> str:
    """The CRF settings in one line: ``off``, or the base preset and what overrides it."""
    if settings is None:
        return "off"
    overrides = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                          for k, v in sorted(settings.items()) if k != "preset")
    return f"{settings.get('preset', 'voc')} preset" + (f" with {overrides}" if overrides else "")


def stages_table(summary: dict[str, Any]) -> str:
    """The end-of-run table: per-stage and end-to-end percentiles, then counts and throughput."""
    rows = [(name, s) for name, s in summary["stages"].items()] + [("end-to-end", summary["end_to_end"]),
                                                                    ("glass→mask", summary["latency"])]
    lines = [f"{'stage':<12}{'p50 ms':>10}{'p90 ms':>10}{'p99 ms':>10}{'mean ms':>10}"]
    lines += [f"{name:<12}{s['p50_ms']:>10.2f}{s['p90_ms']:>10.2f}{s['p99_ms']:>10.2f}{s['mean_ms']:>10.2f}"
              for name, s in rows]
    f = summary["frames"]
    lines.append(f"frames: {f['processed']} processed, {f['skipped']} undecodable (skipped), {f['failed']} failed; "
                 f"{summary['fps']:.1f} fps overall ({summary['mode']}); slowest stage: {summary['slowest_stage']}")
    lines.append(engine_line(summary))
    lines += [f"note: {n}" for n in summary["notes"]]
    lines += [f"error ({count}×): {msg}" for msg, count in summary["errors"].items()]
    return "\n".join(lines)


def streams_table(summary: dict[str, Any]) -> str:
    """Several streams: per-stream rows (state, counts, fps over the stream's own active time, latency
    percentiles), then the aggregate, the backend and CRF line, and each stream's errors."""
    head = (f"{'stream':<16}{'state':<13}{'processed':>10}{'dropped':>9}{'skipped':>9}{'failed':>8}{'reconn':>8}"
            f"{'fps':>8}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}")
    lines = [head]
    for name, s in summary["streams"].items():
        f, e = s["frames"], s["end_to_end"]
        lines.append(f"{name[:15]:<16}{s['state']:<13}{f['processed']:>10}{f['dropped']:>9}{f['skipped']:>9}"
                     f"{f['failed']:>8}{s['reconnects']:>8}{s['fps']:>8.1f}{e['p50_ms']:>9.1f}{e['p90_ms']:>9.1f}"
                     f"{e['p99_ms']:>9.1f}")
    a = summary["aggregate"]
    lines.append(f"all: {a['frames']['processed']} frames, {a['fps']:.1f} fps ({summary['mode']}), "
                 f"p99 {a['end_to_end']['p99_ms']:.1f} ms; batches: mean {a['batch']['mean']:.2f} of at most "
                 f"{a['batch']['max']} ({a['batch']['calls']} inference calls)")
    lines.append(engine_line(summary))
    for name, s in summary["streams"].items():
        lines += [f"{name}: ({count}×) {message}" for message, count in s["errors"].items()]
    return "\n".join(lines)


def engine_line(summary: dict[str, Any]) -> str:
    """``backend: NAME; CRF: …`` (why the backend was chosen is said once, at the start)."""
    return f"backend: {summary['backend']}; CRF: {describe_crf(summary['crf'])}"
