"""`python -m export eval MODEL --data DIR`: mIoU, pixel accuracy and per-class IoU, without and with the CRF.

Every image goes through the runtime's own stages (``runtime.Segmenter``: preprocessing, inference, upsampling, CRF),
so the figures are those of the deployed pipeline. One inference per image: the no-CRF labels are the argmax of the
upsampled probabilities, the CRF labels the argmax of ``refine()`` applied to the same probabilities.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Protocol

import numpy as np

from export.metrics import ConfusionMatrix, iou, miou, pixel_accuracy
from export.onnx_export import add_source_arguments, export_onnx
from export.voc import VOCDataset, atomic_output
from runtime import Segmenter, named
from runtime.backends import BACKENDS, CHECKPOINT_SUFFIXES
from runtime.palette import palette_of


class Stages(Protocol):
    """The part of ``runtime.Segmenter`` that evaluation uses."""

    def infer(self, image: np.ndarray) -> tuple[np.ndarray, Any]: ...

    def upsample(self, logits: np.ndarray, padding: Any) -> np.ndarray: ...

    def refine(self, image: np.ndarray, probs: np.ndarray) -> np.ndarray: ...


@dataclass
class Evaluation:
    """Confusion matrices of one model on one dataset (``crf`` is None when the CRF was not run)."""

    class_names: list[str]
    images: int
    plain: np.ndarray
    crf: np.ndarray | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready figures: fractions in [0, 1], NaN (a class absent from truth and prediction) as null."""
        def num(x: float) -> float | None:
            return None if math.isnan(x) else float(x)

        out: dict[str, Any] = {
            "images": self.images,
            "class_names": self.class_names,
            "miou": num(miou(self.plain)),
            "pixel_acc": num(pixel_accuracy(self.plain)),
            "iou": {n: num(v) for n, v in zip(self.class_names, iou(self.plain))},
            "confusion": self.plain.tolist(),
        }
        if self.crf is not None:
            out.update({
                "miou_crf": num(miou(self.crf)),
                "pixel_acc_crf": num(pixel_accuracy(self.crf)),
                "iou_crf": {n: num(v) for n, v in zip(self.class_names, iou(self.crf))},
                "confusion_crf": self.crf.tolist(),
            })
        return out


def evaluate(stages: Stages, dataset: VOCDataset, class_names: list[str], crf: bool = True,
             progress: bool = True) -> Evaluation:
    """Run every image of ``dataset`` once through ``stages`` and accumulate the confusion matrices."""
    from tqdm import tqdm

    n = len(class_names)
    cm_plain, cm_crf = ConfusionMatrix(n), ConfusionMatrix(n)
    for image, truth in tqdm(dataset, total=len(dataset), desc="eval", unit="img", disable=None if progress else True):
        logits, padding = stages.infer(image)
        probs = stages.upsample(logits, padding)
        cm_plain.update(truth, probs.argmax(0))
        if crf:
            cm_crf.update(truth, stages.refine(image, probs).argmax(0))
    return Evaluation(list(class_names), len(dataset), cm_plain.matrix, cm_crf.matrix if crf else None)


def format_table(result: Evaluation) -> str:
    """Per-class IoU and the summary rows, in percent."""
    def pct(x: float) -> str:
        return "   -  " if math.isnan(x) else f"{100 * x:6.2f}"

    columns = [("no CRF", result.plain), ("CRF", result.crf)]
    columns = [(name, m) for name, m in columns if m is not None]
    width = max(12, *(len(c) for c in result.class_names))
    lines = [f"{'class':<{width}} " + " ".join(f"{name:>8}" for name, _ in columns)]
    ious = [iou(m) for _, m in columns]
    for i, name in enumerate(result.class_names):
        lines.append(f"{name:<{width}} " + " ".join(f"{pct(v[i]):>8}" for v in ious))
    lines.append("-" * len(lines[0]))
    lines.append(f"{'mIoU':<{width}} " + " ".join(f"{pct(miou(m)):>8}" for _, m in columns))
    lines.append(f"{'pixel acc':<{width}} " + " ".join(f"{pct(pixel_accuracy(m)):>8}" for _, m in columns))
    return "\n".join(lines)


@contextlib.contextmanager
def model_file(model: str, **export_args: Any) -> Iterator[Path]:
    """What the runtime can load for MODEL: a name such as ``demo`` (:mod:`runtime.named`) is its model file, a
    checkpoint (``.pt``/``.pth``/``.caffemodel``) is exported to a temporary ONNX (removed afterwards) with
    ``export_args`` (``layout``, ``prototxt``, ``classes``: :func:`export.onnx_export.export_onnx`), anything else
    (ONNX, engine) is passed through."""
    path = Path(named.resolve(model, "model", FileNotFoundError))
    if not path.exists():
        raise FileNotFoundError(f"model not found: {model}")
    if path.suffix.lower() not in CHECKPOINT_SUFFIXES:
        yield path
        return

    with tempfile.TemporaryDirectory(prefix="deeplab-eval-") as tmp:
        onnx_file = Path(tmp) / f"{path.stem}.onnx"
        export_onnx(path, onnx_file, **export_args)
        yield onnx_file


def source_args(args: argparse.Namespace) -> dict[str, Any]:
    """The checkpoint-reading options of a command line (:func:`export.onnx_export.add_source_arguments`)."""
    return {"layout": args.layout, "prototxt": args.prototxt, "classes": args.classes}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="demo, a checkpoint (.pt/.pth/.caffemodel), an ONNX file or a TensorRT engine")
    add_source_arguments(parser)
    parser.add_argument("--data", required=True, help="dataset directory in the PASCAL VOC layout")
    parser.add_argument("--split", default="val", help="which ImageSets/Segmentation list to use (default val)")
    parser.add_argument("--crf", action=argparse.BooleanOptionalAction, default=True,
                        help="also refine with the CRF (default); the no-CRF figures come from the same inference")
    parser.add_argument("--backend", default="auto", choices=BACKENDS, help="runtime backend (default auto)")
    parser.add_argument("--json", metavar="FILE", help="write the figures to this JSON file (default: none)")
    parser.add_argument("--max-images", type=int, metavar="N",
                        help="evaluate only the first N images of the split (default: all)")


def run(args: argparse.Namespace) -> int:
    dataset = VOCDataset(args.data, args.split, args.max_images)
    with model_file(args.model, **source_args(args)) as path:
        segmenter = Segmenter(str(path), backend=args.backend)
        dataset.colours = palette_of(segmenter.meta)  # label PNGs may use the model's palette (e.g. Cityscapes')
        class_names = list(segmenter.meta.class_names)
        data_names = dataset.class_names
        if data_names is not None and data_names != class_names:
            raise ValueError(f"the dataset's classes.txt ({len(data_names)} classes) does not match the model's "
                             f"classes ({len(class_names)}): {data_names} vs {class_names}")
        result = evaluate(segmenter, dataset, class_names, crf=args.crf)
    print(f"{args.model} on {args.data} ({args.split}, {result.images} images)")
    print(format_table(result))
    if args.json:
        report = {"model": str(args.model), "data": str(args.data), "split": args.split, **result.to_dict()}
        with atomic_output(args.json) as tmp:
            Path(tmp).write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.json}", file=sys.stderr)
    return 0
