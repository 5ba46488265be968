"""How much of the error is the 1/8 output, and how much the network: a model against the best 1/8 logits there are.

    python benchmarks/stride_ceiling.py                       # demo model, 40 held-out scenes (seed 2)
    python benchmarks/stride_ceiling.py --model m.onnx --data VOC_DIR --max-images 100 --json out.json

For each image, free logits of the shape the model outputs (C × H'/8 × W'/8 of the padded input) are fitted to the
image's labels by Adam on the cross-entropy of their bilinear upsampling (torch, the model's align_corners), then
turned into labels by the runtime's own upsampling, as the model's logits are. The mIoU they reach is a ceiling for any
network with this output stride and no CRF; the model's own mIoU, without and with its CRF, is measured on the same
images in the same run.
Needs torch (`pip install -e ".[export]"`).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from demo.dataset import write_dataset
from export.evaluate import evaluate
from export.metrics import ConfusionMatrix, iou, miou
from export.voc import VOCDataset
from runtime import Segmenter
from runtime.segmenter import crf_summary
from runtime.atomic import atomic_write_text


def fit_logits(shape: tuple[int, int, int], truth: np.ndarray, padded: tuple[int, int], align_corners: bool,
               steps: int, lr: float) -> np.ndarray:
    """C×h×w logits whose bilinear upsampling to ``padded``, cropped to ``truth``'s size, fits ``truth`` best."""
    import torch
    import torch.nn.functional as F

    target = torch.from_numpy(truth.astype(np.int64))[None]
    logits = torch.zeros((1, *shape), requires_grad=True)
    opt = torch.optim.Adam([logits], lr=lr)
    rows, cols = truth.shape
    for _ in range(steps):
        opt.zero_grad()
        up = F.interpolate(logits, size=padded, mode="bilinear", align_corners=align_corners)[..., :rows, :cols]
        F.cross_entropy(up, target, ignore_index=255).backward()
        opt.step()
    return logits.detach()[0].numpy()


def main(argv: list[str] | None = None) -> int:
    from tqdm import tqdm

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="demo", help="ONNX (default: the demo model): its output shape and geometry")
    p.add_argument("--data", help="VOC-layout set (default: generate --max-images scenes with --seed)")
    p.add_argument("--split", default="val", help="split (default val)")
    p.add_argument("--seed", type=int, default=2, help="generator seed without --data (default 2, the held-out set)")
    p.add_argument("--max-images", type=int, default=40, help="images to use (default 40)")
    p.add_argument("--steps", type=int, default=1000, help="Adam steps per image (default 1000)")
    p.add_argument("--lr", type=float, default=0.5, help="Adam learning rate (default 0.5)")
    p.add_argument("--json", help="write the figures to this file")
    args = p.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="stride-ceiling-") as tmp, Segmenter(args.model, crf="default") as seg:
        data = args.data
        if data is None:
            data = Path(tmp) / "heldout"
            write_dataset(data, args.max_images, args.seed, 320, 240, val_fraction=1.0)
        dataset = VOCDataset(data, args.split, args.max_images)
        names = list(seg.meta.class_names)
        model = evaluate(seg, dataset, names)  # the model without and with its CRF, as `export eval` measures it
        ceiling_cm = ConfusionMatrix(len(names))
        for image, truth in tqdm(dataset, total=len(dataset), desc="stride-ceiling", unit="img", disable=None):
            logits, padding = seg.infer(image)  # for the output shape of this input size
            fitted = fit_logits(logits.shape, truth, (padding.padded_height, padding.padded_width),
                                seg.meta.align_corners, args.steps, args.lr)
            ceiling_cm.update(truth, seg.labels(fitted, padding))

    columns = {"model": model.plain, "model_crf": model.crf, "ceiling": ceiling_cm.matrix}
    print(f"{len(dataset)} images of {data if args.data else f'seed {args.seed}'}; output stride "
          f"{seg.meta.output_stride}, {args.steps} Adam steps per image")
    print(f"{'class':<14}{'model':>8}{'+ CRF':>8}{'ceiling':>9}")
    for name, a, b, c in zip(names, *(iou(m) for m in columns.values())):
        print(f"{name:<14}{100 * a:>8.2f}{100 * b:>8.2f}{100 * c:>9.2f}")
    a, b, c = (miou(m) for m in columns.values())
    print(f"{'mIoU':<14}{100 * a:>8.2f}{100 * b:>8.2f}{100 * c:>9.2f}")
    if args.json:
        out = {"model": args.model, "data": str(args.data or f"generated seed {args.seed}"), "images": len(dataset),
               "steps": args.steps, "lr": args.lr, "class_names": names, "crf": crf_summary(seg.crf),
               **{f"{k}_miou": miou(m) for k, m in columns.items()},
               **{f"{k}_iou": iou(m).tolist() for k, m in columns.items()}}
        atomic_write_text(args.json, json.dumps(out, indent=2) + "\n")
        print(f"wrote {args.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
