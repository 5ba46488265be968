"""`python -m demo tune-crf`: pick the demo model's CRF settings by a small grid search on a validation split.

The VOC preset (σxy=67, σrgb=3) was tuned for 500×375 photos; the generated scenes are smaller, noisier and have crisp
edges. Each image is inferred and upsampled once through ``runtime.Segmenter`` (the runtime's own stages), then
refined with ``crf.refine`` for every candidate; the best mean IoU wins. The result goes into the checkpoint's
``meta["crf"]``, which the ONNX export carries as ``ModelMeta.extra["crf"]``: the runtime's default preset for that model.
Search on a validation split, never on the held-out test set.
"""
from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path
from typing import Any

import crf
from demo.assets import check_not_assets, checkpoint_path
from demo.train import onnx_beside, provenance
from export.metrics import ConfusionMatrix
from export.onnx_export import export_onnx
from export.voc import VOCDataset
from runtime import Segmenter

# The default grid: appearance (bilateral) kernel σxy, σrgb and weight; the smoothness kernel and iterations as in "voc".
GRID: dict[str, tuple[float, ...]] = {
    "bilateral_sxy": (10.0, 20.0, 40.0, 67.0),
    "bilateral_srgb": (3.0, 6.0, 10.0, 20.0),
    "bilateral_weight": (3.0, 5.0, 8.0, 12.0),
}
VOC = {"preset": "voc"}


def candidates(grid: dict[str, tuple[float, ...]] = GRID) -> list[dict[str, Any]]:
    """``crf.refine`` keyword arguments: the VOC preset itself, then every point of ``grid``."""
    names = list(grid)
    return [VOC] + [{"preset": "voc", **dict(zip(names, values))} for values in itertools.product(*grid.values())]


def edge_warnings(best: dict[str, Any], grid: dict[str, tuple[float, ...]]) -> list[str]:
    """One line for each parameter whose best value is the smallest or largest searched: the optimum may lie beyond."""
    lines = []
    for name, values in grid.items():
        if len(values) < 2 or name not in best:
            continue
        for end, value in (("largest", max(values)), ("smallest", min(values))):
            if best[name] == value:
                lines.append(f"{name} {value:g} is the {end} value searched; widen --{_flag(name)} to look beyond it")
    return lines


def _flag(name: str) -> str:
    return name.removeprefix("bilateral_")


def _values(text: str) -> tuple[float, ...]:
    try:
        values = tuple(sorted({float(v) for v in text.split(",")}))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None
    if not all(v > 0 for v in values):
        raise argparse.ArgumentTypeError(f"values must be > 0, got {text!r}")
    return values


def search(model: str | Path, dataset: VOCDataset, grid: list[dict[str, Any]], progress: bool = True
           ) -> tuple[float, list[tuple[float, dict[str, Any]]]]:
    """(mIoU without the CRF, [(mIoU, settings)] for every grid point, best first)."""
    from tqdm import tqdm

    seg = Segmenter(str(model), crf=None)
    n = seg.meta.n_classes
    plain = ConfusionMatrix(n)
    matrices = [ConfusionMatrix(n) for _ in grid]
    for image, truth in tqdm(dataset, total=len(dataset), desc="tune-crf", unit="img",
                             disable=None if progress else True):
        logits, padding = seg.infer(image)
        probs = seg.upsample(logits, padding)
        plain.update(truth, probs.argmax(0))
        for cm, settings in zip(matrices, grid):
            cm.update(truth, crf.refine(image, probs, **settings).argmax(0))
    seg.close()
    ranked = sorted(((cm.miou(), settings) for cm, settings in zip(matrices, grid)), key=lambda r: -r[0])
    return plain.miou(), ranked


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, help="VOC-layout dataset whose split is searched on (not the test set)")
    parser.add_argument("--split", default="val", help="split to search on (default val)")
    parser.add_argument("--max-images", type=int, default=60, help="images of the split to use (default 60)")
    parser.add_argument("--checkpoint", default=str(checkpoint_path()),
                        help="checkpoint to tune (default: the demo's; read only)")
    parser.add_argument("--onnx", help="the checkpoint's ONNX, searched with (default: --checkpoint with the suffix "
                                       ".onnx; read only)")
    parser.add_argument("--out", required=True,
                        help="checkpoint to write: --checkpoint with the settings in its meta; also exported to ONNX "
                             "beside it (--out with the suffix .onnx)")
    parser.add_argument("--update-demo", action="store_true",
                        help="allow --out inside demo/assets (replaces the bundled demo model)")
    for name, values in GRID.items():
        parser.add_argument(f"--{_flag(name)}", dest=name, type=_values, default=values, metavar="V,V,...",
                            help=f"{name} values to search (default {','.join(f'{v:g}' for v in values)})")


def run(args: argparse.Namespace) -> int:
    import torch

    from export.checkpoint import load_model, save_checkpoint

    out_onnx = onnx_beside(args.out, None)
    check_not_assets([args.out, out_onnx], args.update_demo)
    dataset = VOCDataset(args.data, args.split, args.max_images)
    grid = {name: getattr(args, name) for name in GRID}
    base, ranked = search(args.onnx or Path(args.checkpoint).with_suffix(".onnx"), dataset, candidates(grid))
    best_miou, best = ranked[0]
    print(f"mIoU on {args.data} ({args.split}, {len(dataset)} images): no CRF {100 * base:.2f}")
    for value, settings in ranked[:5]:
        print(f"  {100 * value:.2f}  {settings}")
    print(f"  VOC preset: {100 * next(v for v, s in ranked if s == VOC):.2f}")
    for line in edge_warnings(best, grid):
        print(f"note: {line}")
    model, ckpt = load_model(args.checkpoint)
    meta = {**ckpt.meta, "crf": best,
            "crf_search": {"data": provenance(args.data), "split": args.split, "images": len(dataset),
                           "miou": round(best_miou, 5), "miou_no_crf": round(base, 5)}}
    with torch.no_grad():
        save_checkpoint(args.out, model, ckpt.class_names, meta)
    export_onnx(args.out, out_onnx, height=240, width=320, log=lambda s: print(s, file=sys.stderr))
    print(f"wrote {args.out} and {out_onnx} with the CRF settings {best}")
    return 0
