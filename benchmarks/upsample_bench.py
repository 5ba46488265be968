"""Upsampling benchmark: the C++ extension against the numpy fallback (and torch when installed), same inputs.

    python benchmarks/upsample_bench.py [--classes 21 --logits 64 --size 512 --crop 500x375 --json out.json]

Times are the best of 3 rounds of 5 calls (ms per call); a table on stdout, JSON with --json.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from runtime import upsample


def best_ms(fn, rounds: int = 3, calls: int = 5) -> float:
    fn()
    best = float("inf")
    for _ in range(rounds):
        t = time.perf_counter()
        for _ in range(calls):
            fn()
        best = min(best, (time.perf_counter() - t) / calls * 1000)
    return best


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--classes", type=int, default=21, help="classes (default 21)")
    p.add_argument("--logits", type=int, default=64, help="logit map side, h = w (default 64)")
    p.add_argument("--size", type=int, default=512, help="upsampled side, H = W (default 512)")
    p.add_argument("--crop", default="500x375", help="HxW computed of the upsampled map (default 500x375)")
    p.add_argument("--json", help="write the results here")
    args = p.parse_args(argv)
    crop = tuple(int(v) for v in args.crop.split("x"))
    x = (np.random.default_rng(0).standard_normal((1, args.classes, args.logits, args.logits)) * 4).astype(np.float32)
    size = (args.size, args.size)
    results: dict[str, dict[str, float]] = {}
    ext = upsample._ext
    for impl in ("c++", "numpy"):
        if impl == "c++" and ext is None:
            continue
        upsample._ext = ext if impl == "c++" else None
        results[impl] = {
            "softmax_ms": best_ms(lambda: upsample.bilinear_softmax(x, size, crop=crop)),
            "labels_ms": best_ms(lambda: upsample.bilinear_labels(x, size, crop=crop)),
        }
    upsample._ext = ext
    try:
        import torch
        t = torch.from_numpy(x)

        def torch_softmax():
            torch.nn.functional.interpolate(t, size=size, mode="bilinear")[:, :, :crop[0], :crop[1]].softmax(1)

        def torch_labels():
            torch.nn.functional.interpolate(t, size=size, mode="bilinear")[:, :, :crop[0], :crop[1]].argmax(1)
        results["torch"] = {"softmax_ms": best_ms(torch_softmax), "labels_ms": best_ms(torch_labels)}
    except ImportError:
        pass
    print(f"{args.classes}×{args.logits}×{args.logits} logits → {args.crop} of {args.size}×{args.size}")
    print(f"{'implementation':<16}{'softmax ms':>12}{'labels ms':>12}")
    for impl, r in results.items():
        print(f"{impl:<16}{r['softmax_ms']:>12.1f}{r['labels_ms']:>12.1f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
