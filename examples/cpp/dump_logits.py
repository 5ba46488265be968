"""Write the network's logits for every frame of a source, for `deeplab_segment --logits DIR` on machines where the
C++ example cannot run the network itself (no TensorRT).

    python examples/cpp/dump_logits.py --model demo --source demo --out logits/ [--max-frames N] [--backend auto]

DIR/meta.json is the model's metadata (ModelMeta.to_json()); DIR/<frame name>.npy holds the float32 C×h×w logits of
the frame's padded input, exactly what runtime.Segmenter.infer computes (same sources, same frame names, same
preprocessing and backend as runtime/infer.py).
"""
from __future__ import annotations

import argparse
import sys

import numpy as np

from runtime.atomic import atomic_path, atomic_write_text, make_dirs
from runtime.backends import BACKENDS
from runtime.cli_errors import run_command
from runtime.segmenter import Segmenter
from runtime.sources import open_source


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="demo", help="ONNX model or engine; 'demo' = the bundled demo model")
    p.add_argument("--source", default="demo", help="video, image, directory or glob; 'demo' = the sample video")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--backend", default="auto", choices=BACKENDS,
                   help="inference backend, as in runtime/infer.py (default auto: TensorRT for an engine on a GPU, "
                        "else ONNX Runtime)")
    p.add_argument("--max-frames", type=int, metavar="N", help="stop after N frames (default: the whole source)")
    return p


def dump(args: argparse.Namespace) -> int:
    """Write meta.json and one .npy of logits per frame; returns the exit status (1 when no frame was written)."""
    seg = Segmenter(args.model, backend=args.backend, crf=None)
    count = 0
    try:
        source = open_source(args.source)
        try:
            out = make_dirs(args.out)
            atomic_write_text(out / "meta.json", seg.meta.to_json() + "\n")
            for frame in source:
                if args.max_frames is not None and count >= args.max_frames:
                    break
                logits, _ = seg.infer(frame.image)
                with atomic_path(out / f"{frame.name}.npy") as tmp, open(tmp, "wb") as f:
                    np.save(f, np.ascontiguousarray(logits, np.float32))
                count += 1
        finally:
            source.close()
    finally:
        seg.close()
    print(f"{count} frames of logits written to {out}")
    return 0 if count else 1


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_command(lambda: dump(args))


if __name__ == "__main__":
    sys.exit(main())
