#!/usr/bin/env python3
"""What the drop-in path pays for its smoothness kernel, and the page faults of its calls after another CRF.

The drop-in is what a pydensecrf user's script runs after `import crf as dcrf`: DenseCRF2D with its defaults
(pydensecrf's lattice for both kernels, float rows), the VOC settings, set-up included, all threads. For every photo
(default: ../shared/reference/images, cropped and resized as crf_bench.py does, with its 21-label unaries), each repeat
runs pydensecrf once (as crf_bench.py interleaves it), then the drop-in with both kernels and the drop-in without the
smoothness kernel (the bilateral one only). Prints per photo the medians of both, the smoothness kernel's share of
the drop-in's time, and the page faults of one drop-in call (set-up and inference) right after the pydensecrf run, with
the worst and the median over the photos.

    python benchmarks/crf_dropin_cost.py [--images DIR_OR_FILES...] [--repeats 5] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

import crf
from crf_bench import REFERENCE, image_paths, load_image
from runtime.atomic import atomic_write_text


def drop_in(img: np.ndarray, unary: np.ndarray, preset: crf.Preset, iterations: int, smoothness: bool) -> float:
    """Seconds for DenseCRF2D's set-up and inference, with or without the smoothness kernel."""
    h, w = img.shape[:2]
    t0 = time.perf_counter()
    d = crf.DenseCRF2D(w, h, unary.shape[0])
    d.setUnaryEnergy(unary)
    if smoothness:
        d.addPairwiseGaussian(sxy=preset.gaussian_sxy, compat=preset.gaussian_weight)
    d.addPairwiseBilateral(sxy=preset.bilateral_sxy, srgb=preset.bilateral_srgb, rgbim=img,
                           compat=preset.bilateral_weight)
    np.asarray(d.inference(iterations))
    return time.perf_counter() - t0


def reference_run(ref: Any, img: np.ndarray, unary: np.ndarray, preset: crf.Preset, iterations: int) -> None:
    h, w = img.shape[:2]
    d = ref.DenseCRF2D(w, h, unary.shape[0])
    d.setUnaryEnergy(unary)
    d.addPairwiseGaussian(sxy=preset.gaussian_sxy, compat=preset.gaussian_weight)
    d.addPairwiseBilateral(sxy=preset.bilateral_sxy, srgb=preset.bilateral_srgb, rgbim=img,
                           compat=preset.bilateral_weight)
    d.inference(iterations)


def minor_faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=Path, nargs="+", default=[REFERENCE / "images"],
                   help="image files or directories (default: ../shared/reference/images)")
    p.add_argument("--repeats", type=int, default=5, help="runs per configuration and photo, medians shown (default 5)")
    p.add_argument("--iterations", type=int, default=10, help="mean-field iterations (default 10)")
    p.add_argument("--seed", type=int, default=0, help="seed of the synthetic probabilities (default 0)")
    p.add_argument("--json", type=Path, help="write the results here")
    args = p.parse_args()
    try:
        import pydensecrf.densecrf as ref
    except ImportError:
        print("pydensecrf is not installed (pip install pydensecrf2)", file=sys.stderr)
        return 1
    preset = crf.PRESETS["voc"]
    paths = image_paths(args.images)
    images = [load_image(path, 500, 375) for path in paths]
    unary = crf.utils.unary_from_softmax(crf.utils.synthetic_probabilities(375, 500, 21, seed=args.seed))
    drop_in(images[0], unary, preset, 1, True)  # warm-up: thread pool, buffers, smoothness lattice
    rows: list[dict[str, Any]] = []
    for path, img in zip(paths, images):
        full, bilateral, faults = [], [], []
        for _ in range(args.repeats):
            reference_run(ref, img, unary, preset, args.iterations)
            before = minor_faults()
            full.append(drop_in(img, unary, preset, args.iterations, True))
            faults.append(minor_faults() - before)
            bilateral.append(drop_in(img, unary, preset, args.iterations, False))
        f, b = statistics.median(full), statistics.median(bilateral)
        rows.append({"image": path.name, "drop_in_s": f, "without_smoothness_s": b, "smoothness_share": (f - b) / f,
                     "page_faults": statistics.median(faults)})
    print(f"drop-in DenseCRF2D, {len(rows)} photos at 500x375, 21 labels, VOC settings, {args.iterations} iterations, "
          f"{crf.get_num_threads()} threads, median of {args.repeats}\n")
    print("| image | drop-in | without the smoothness kernel | smoothness share | page faults after pydensecrf |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['image']} | {1e3 * r['drop_in_s']:.0f} ms | {1e3 * r['without_smoothness_s']:.0f} ms | "
              f"{100 * r['smoothness_share']:.0f} % | {r['page_faults']:.0f} |")
    for name, fn in (("worst", max), ("median", statistics.median)):
        print(f"| **{name}** | | | {100 * fn(r['smoothness_share'] for r in rows):.0f} % | "
              f"{fn(r['page_faults'] for r in rows):.0f} |")
    if args.json:
        atomic_write_text(args.json, json.dumps({"repeats": args.repeats, "results": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
