#!/usr/bin/env python3
"""Agreement of `crf` with pydensecrf on realistic unaries, for the drop-in defaults and for `crf.refine`.

The reference is kazuto1011/deeplab-pytorch's libs/utils/crf.py with its VOC settings, run on pydensecrf: DenseCRF2D,
unary_from_softmax, addPairwiseGaussian(sxy=1, compat=3), addPairwiseBilateral(sxy=67, srgb=3, compat=4) on the BGR
image, 10 iterations. The same script with `import crf as dcrf` is the drop-in; `crf.refine(image, probs)` (preset
voc) is the one-call form. Every photo (default: ../shared/reference/images, 500x375 as crf_bench.py crops them) gets
unaries from two sources:

- network: the bundled demo DeepLab v2's softmax (8 classes), upsampled bilinearly from 1/8 resolution, as the
  runtime and kazuto's demo produce it (a real network's output on real photos, outside its training domain, so
  with the wide uncertain regions that make a CRF's decisions close);
- smooth-logits: 21 labels, the softmax of smooth random logits upsampled from 1/8 (crf.utils.synthetic_probabilities),
  at confidence 4 (as crf_bench.py) and 2 (a less certain network).

Prints, per source, the worst and median argmax agreement and the largest probability difference over the photos.

    python benchmarks/crf_agreement.py [--images DIR_OR_FILES...] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any, Callable

import numpy as np

import crf
from crf_bench import REFERENCE, image_paths, load_image
from runtime.atomic import atomic_write_text


def kazuto_crf(dcrf: Any, image_bgr: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """libs/utils/crf.py's DenseCRF.__call__ with configs/voc12.yaml's CRF settings."""
    c, h, w = probs.shape
    d = dcrf.DenseCRF2D(w, h, c)
    d.setUnaryEnergy(np.ascontiguousarray(crf.utils.unary_from_softmax(probs)))
    d.addPairwiseGaussian(sxy=1, compat=3)
    d.addPairwiseBilateral(sxy=67, srgb=3, rgbim=np.ascontiguousarray(image_bgr), compat=4)
    return np.array(d.inference(10)).reshape((c, h, w))


def sources(seed: int) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
    from runtime import Segmenter

    segmenter = Segmenter("demo", backend="onnxruntime", crf=None)

    def network(image_bgr: np.ndarray) -> np.ndarray:
        logits, padding = segmenter.infer(image_bgr)
        return np.ascontiguousarray(segmenter.upsample(logits, padding), dtype=np.float32)

    def smooth(confidence: float) -> Callable[[np.ndarray], np.ndarray]:
        return lambda img: crf.utils.synthetic_probabilities(img.shape[0], img.shape[1], 21, seed=seed,
                                                             confidence=confidence)

    return {"network": network, "smooth-logits 4": smooth(4.0), "smooth-logits 2": smooth(2.0)}


def compare(ours: np.ndarray, ref: np.ndarray) -> dict[str, float]:
    same = ours.argmax(0) == ref.argmax(0)
    return {"agreement": float(same.mean()), "differing_pixels": int((~same).sum()),
            "max_diff": float(np.abs(ours - ref).max())}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=Path, nargs="+", default=[REFERENCE / "images"],
                   help="photos or folders of photos (default ../shared/reference/images)")
    p.add_argument("--seed", type=int, default=0, help="seed of the smooth random logits (default 0)")
    p.add_argument("--json", type=Path, help="also write the per-photo figures to this JSON file")
    args = p.parse_args()
    try:
        import pydensecrf.densecrf as reference
    except ImportError:
        print("error: pydensecrf is not installed (pip install pydensecrf2)", file=sys.stderr)
        return 1
    paths = image_paths(args.images)
    results: dict[str, list[dict[str, Any]]] = {}
    for name, make_probs in sources(args.seed).items():
        for path in paths:
            print(f"\r{name}: {path.name}        ", end="", file=sys.stderr)
            image = np.ascontiguousarray(load_image(path, 500, 375)[:, :, ::-1])  # BGR, as kazuto's code reads it
            probs = make_probs(image)
            ref = kazuto_crf(reference, image, probs)
            row = {"image": path.name, "drop_in": compare(kazuto_crf(crf, image, probs), ref),
                   "refine": compare(crf.refine(image, probs, preset="voc"), ref)}
            results.setdefault(name, []).append(row)
    print(file=sys.stderr)
    print(f"argmax agreement with pydensecrf (kazuto's VOC CRF), {len(paths)} photos at 500x375; in brackets: pixels "
          "with another label, max |probability difference|\n")
    print("| unaries | drop-in worst | drop-in median | refine worst | refine median |")
    print("|---|---|---|---|---|")
    for name, rows in results.items():
        cells = []
        for kind in ("drop_in", "refine"):
            agreement = [r[kind]["agreement"] for r in rows]
            pixels = [r[kind]["differing_pixels"] for r in rows]
            diffs = [r[kind]["max_diff"] for r in rows]
            cells += [f"{100 * min(agreement):.2f} % ({max(pixels)} px, {max(diffs):.2g})",
                      f"{100 * statistics.median(agreement):.2f} % ({statistics.median(pixels):.0f} px, "
                      f"{statistics.median(diffs):.2g})"]
        print(f"| {name} | " + " | ".join(cells) + " |")
    if args.json:
        atomic_write_text(args.json, json.dumps({"images": [str(p) for p in paths], "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
