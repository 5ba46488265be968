"""Write the network's logits for every frame of a source, for `deeplab_segment --logits DIR` on machines where the
C++ example cannot run the network itself (no TensorRT).

    python examples/cpp/dump_logits.py --model demo --source demo --out logits/ [--max-frames N] [--backend auto]

DIR/meta.json is the model's metadata (ModelMeta.to_json()); DIR/<frame name>.npy holds the float32 C×h×w logits of
the frame's padded input, exactly what runtime.Segmenter.infer computes (same sources, same frame names, same
preprocessing and backend as runtime/infer.py).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

from runtime.segmenter import Segmenter
from runtime.sources import open_source


def save_atomic(path: Path, write) -> None:
    """write(binary file) into a temporary file beside ``path``, then rename it into place."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="demo", help="ONNX model or engine; 'demo' = the bundled demo model")
    p.add_argument("--source", default="demo", help="video, image, directory or glob; 'demo' = the sample video")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--backend", default="auto")
    p.add_argument("--max-frames", type=int)
    args = p.parse_args(argv)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    seg = Segmenter(args.model, backend=args.backend, crf=None)
    source = open_source(args.source)
    count = 0
    try:
        save_atomic(out / "meta.json", lambda f: f.write((seg.meta.to_json() + "\n").encode()))
        for frame in source:
            if args.max_frames is not None and count >= args.max_frames:
                break
            logits, _ = seg.infer(frame.image)
            array = np.ascontiguousarray(logits, np.float32)
            save_atomic(out / f"{frame.name}.npy", lambda f, array=array: np.save(f, array))
            count += 1
    finally:
        source.close()
        seg.close()
    print(f"{count} frames of logits written to {out}")
    return 0 if count else 1


if __name__ == "__main__":
    sys.exit(main())
