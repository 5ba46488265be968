#!/usr/bin/env python3
"""Which smoothness kernel `crf.refine` should use: the exact image-space Gaussian (its default for sigma <= 4/3) or
pydensecrf's lattice (the drop-in's), on the demo model's data: mIoU and time of each, same probabilities, same
bilateral kernel and rows (the model's own CRF settings), interleaved.

    python -m demo generate --out /tmp/demo_val --count 40 --seed 11 --val-fraction 1
    python benchmarks/crf_smoothness_kernel.py --data /tmp/demo_val [--max-images N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

import crf
from export.metrics import ConfusionMatrix
from export.voc import VOCDataset
from runtime import Segmenter


def lattice_refine(image: np.ndarray, probs: np.ndarray, params: crf.Preset) -> np.ndarray:
    """refine's CRF with pydensecrf's lattice for the smoothness kernel (DenseCRF2D, the preset's rows)."""
    c, h, w = probs.shape
    d = crf.DenseCRF2D(w, h, c)
    d.setHalfRows(params.half_rows)
    d.setUnaryEnergy(crf.utils.unary_from_softmax(probs))  # refine's clip, 1e-5
    d.addPairwiseGaussian(sxy=params.gaussian_sxy, compat=params.gaussian_weight, normalization=params.normalization)
    d.addPairwiseBilateral(sxy=params.bilateral_sxy, srgb=params.bilateral_srgb, rgbim=image,
                           compat=params.bilateral_weight, normalization=params.normalization)
    return d.inference(params.iterations).reshape(c, h, w)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, required=True, help="VOC-layout data set (python -m demo generate)")
    p.add_argument("--split", default="val", help="the data set's split list (default val)")
    p.add_argument("--max-images", type=int, help="use at most this many images (default all)")
    args = p.parse_args()
    dataset = VOCDataset(args.data, args.split, args.max_images)
    seg = Segmenter("demo", crf=None)
    settings: dict[str, Any] = dict(seg.meta.extra.get("crf") or {"preset": "voc"})
    params = crf.PRESETS[settings.pop("preset", "voc")].with_overrides(**settings)
    n = seg.meta.n_classes
    matrices = {"none": ConfusionMatrix(n), "image space": ConfusionMatrix(n), "lattice": ConfusionMatrix(n)}
    seconds: dict[str, list[float]] = {"image space": [], "lattice": []}
    load_before = os.getloadavg()[0]
    for image, truth in dataset:
        logits, padding = seg.infer(image)
        probs = seg.upsample(logits, padding)
        matrices["none"].update(truth, probs.argmax(0))
        for name in ("image space", "lattice"):
            t0 = time.perf_counter()
            out = crf.refine(image, probs, preset=params) if name == "image space" else lattice_refine(image, probs,
                                                                                                      params)
            seconds[name].append(time.perf_counter() - t0)
            matrices[name].update(truth, out.argmax(0))
    print(f"demo model, {len(dataset)} images of {args.data.name} ({args.split}), CRF {params}; load average "
          f"{load_before:.2f} -> {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores\n")
    print("| smoothness kernel | mIoU | median time per image |\n|---|---|---|")
    for name, cm in matrices.items():
        t = f"{1e3 * statistics.median(seconds[name]):.0f} ms" if name in seconds else ""
        print(f"| {name} | {100 * cm.miou():.2f} | {t} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
