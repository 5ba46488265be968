"""`python -m export compare MODEL_A MODEL_B ... --data DIR`: how far FP16/INT8 models (or engines) drift from a
reference, through the runtime's own code.

The first model is the reference. Every image goes through ``runtime.Segmenter`` (same preprocessing, backend,
upsampling as deployment; no CRF) for every model. Reported per model: argmax agreement with the reference over the
full-resolution label maps, logit error (max and mean absolute difference, max relative to the reference's largest
logit), mIoU and per-class IoU deltas when DIR has labels (VOC layout), and the median latency of inference
(preprocessing + network) on the backend used.
"""
from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from export.calibration import list_images
from export.evaluate import model_file, source_args
from export.onnx_export import add_source_arguments
from export.metrics import ConfusionMatrix, iou, miou
from export.voc import VOCDataset, read_image
from runtime import Segmenter
from runtime.atomic import atomic_write_text
from runtime.backends import BACKENDS
from runtime.preprocess import logits_size


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("models", nargs="+", metavar="MODEL",
                   help="reference first (demo, a checkpoint, an ONNX file or an engine), then the models to compare")
    add_source_arguments(p)
    p.add_argument("--data", required=True,
                   help="a VOC-layout dataset (labels -> mIoU) or a directory of images (agreement and logits only)")
    p.add_argument("--split", default="val", help="VOC split list (default val)")
    p.add_argument("--backend", default="auto", choices=BACKENDS, help="runtime backend for every model (default auto)")
    p.add_argument("--max-images", type=int, metavar="N", help="use only the first N images (default: all)")
    p.add_argument("--json", metavar="FILE", help="write the figures to this JSON file (default: none)")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bar (there is none when stderr is not a terminal)")


@dataclass
class ModelStats:
    """What :func:`compare` measures for one model (against the reference, the first model)."""

    model: str
    backend: str = ""
    precision: str = ""
    size_mb: float = 0.0
    agree_pixels: int = 0
    pixels: int = 0
    max_abs_logit_error: float = 0.0
    sum_abs_logit_error: float = 0.0
    logit_values: int = 0
    ref_max_abs_logit: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    confusion: np.ndarray | None = None

    def add_pair(self, labels: np.ndarray, ref_labels: np.ndarray, logits: np.ndarray, ref_logits: np.ndarray) -> None:
        """Accumulate one image: full-resolution labels and (cropped) logits of this model and of the reference."""
        if labels.shape != ref_labels.shape or logits.shape != ref_logits.shape:
            raise ValueError(f"{self.model}: output shape {logits.shape} differs from the reference's "
                             f"{ref_logits.shape}")
        self.agree_pixels += int((labels == ref_labels).sum())
        self.pixels += labels.size
        diff = np.abs(logits.astype(np.float64) - ref_logits)
        self.max_abs_logit_error = max(self.max_abs_logit_error, float(diff.max(initial=0.0)))
        self.sum_abs_logit_error += float(diff.sum())
        self.logit_values += diff.size
        self.ref_max_abs_logit = max(self.ref_max_abs_logit, float(np.abs(ref_logits).max(initial=0.0)))

    @property
    def agreement(self) -> float:
        return self.agree_pixels / self.pixels if self.pixels else float("nan")

    @property
    def mean_abs_logit_error(self) -> float:
        return self.sum_abs_logit_error / self.logit_values if self.logit_values else float("nan")

    @property
    def rel_logit_error(self) -> float:
        return self.max_abs_logit_error / self.ref_max_abs_logit if self.ref_max_abs_logit else float("nan")

    @property
    def latency_ms(self) -> float:
        return float(np.median(self.latencies_ms)) if self.latencies_ms else float("nan")

    def ious(self) -> np.ndarray | None:
        return None if self.confusion is None else iou(self.confusion)

    def miou(self) -> float:
        return float("nan") if self.confusion is None else miou(self.confusion)

    def to_dict(self, class_names: Sequence[str], reference: "ModelStats") -> dict[str, Any]:
        def num(x: float) -> float | None:
            return None if isinstance(x, float) and math.isnan(x) else x

        out = {k: v for k, v in asdict(self).items() if k not in ("confusion", "latencies_ms")}
        out.update(agreement=num(self.agreement), mean_abs_logit_error=num(self.mean_abs_logit_error),
                   rel_logit_error=num(self.rel_logit_error), latency_ms_p50=num(self.latency_ms),
                   images=len(self.latencies_ms))
        if self.confusion is not None:
            ious, ref = self.ious(), reference.ious()
            out["miou"] = num(self.miou())
            out["miou_delta"] = num(self.miou() - reference.miou())
            out["iou"] = {n: num(float(v)) for n, v in zip(class_names, ious)}
            out["iou_delta"] = {n: num(float(v - r)) for n, v, r in zip(class_names, ious, ref)}
        return out


# --------------------------------------------------------------------------------------------------------------------
# Tables


def _pct(x: float, width: int = 7, signed: bool = False) -> str:
    if isinstance(x, float) and math.isnan(x):
        return f"{'-':>{width}}"
    return f"{100 * x:>+{width}.2f}" if signed else f"{100 * x:>{width}.2f}"


def format_summary(stats: Sequence[ModelStats]) -> str:
    """One row per model, the reference first (like ``yolo benchmark``'s table)."""
    ref = stats[0]
    has_labels = ref.confusion is not None
    name_w = max(5, *(len(Path(s.model).name) for s in stats))
    head = (f"{'model':<{name_w}}  {'backend':<11} {'prec':<4} {'MB':>6}  {'agree %':>7}  {'max|Δ|':>8} {'mean|Δ|':>8} "
            f"{'rel %':>6}")
    if has_labels:
        head += f"  {'mIoU %':>7} {'ΔmIoU':>7}"
    head += f"  {'ms/img':>7}"
    lines = [head, "-" * len(head)]
    for s in stats:
        row = (f"{Path(s.model).name:<{name_w}}  {s.backend:<11} {s.precision:<4} {s.size_mb:>6.1f}  "
               f"{_pct(s.agreement)}  {s.max_abs_logit_error:>8.4f} {s.mean_abs_logit_error:>8.5f} "
               f"{_pct(s.rel_logit_error, 6)}")
        if has_labels:
            row += f"  {_pct(s.miou())} {_pct(s.miou() - ref.miou(), signed=True)}"
        row += f"  {s.latency_ms:>7.1f}"
        lines.append(row)
    return "\n".join(lines)


def format_classes(stats: Sequence[ModelStats], class_names: Sequence[str]) -> str:
    """Per-class IoU of the reference and the delta of every other model, in points."""
    ref = stats[0].ious()
    if ref is None:
        return ""
    name_w = max(5, *(len(c) for c in class_names))
    cols = [Path(s.model).name for s in stats[1:]]
    col_w = [max(9, len(c)) for c in cols]
    head = f"{'class':<{name_w}}  {'IoU %':>7}" + "".join(f"  {'Δ ' + c:>{w + 2}}" for c, w in zip(cols, col_w))
    lines = [head, "-" * len(head)]
    others = [s.ious() for s in stats[1:]]
    for i, name in enumerate(class_names):
        row = f"{name:<{name_w}}  {_pct(float(ref[i]))}"
        row += "".join(f"  {_pct(float(o[i] - ref[i]), w + 2, signed=True)}" for o, w in zip(others, col_w))
        lines.append(row)
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------------------------
# Running


def _images(data: str | os.PathLike[str], split: str) -> tuple[Iterator[tuple[np.ndarray, np.ndarray | None]], int,
                                                                list[str] | None]:
    """(image, labels or None) pairs, their count and the dataset's class names (None without labels)."""
    root = Path(data)
    if (root / "ImageSets").is_dir():
        ds = VOCDataset(root, split)
        return iter(ds), len(ds), ds.class_names

    paths = list_images(root)
    return ((read_image(p), None) for p in paths), len(paths), None


def compare(models: Sequence[str], data: str | os.PathLike[str], *, split: str = "val", backend: str = "auto",
            max_images: int | None = None, progress: bool = True, export_args: dict[str, Any] | None = None
            ) -> tuple[list[ModelStats], list[str]]:
    """Run every image through every model; returns the stats (reference first) and the class names.
    ``export_args``: how checkpoints among the models are read (:func:`export.evaluate.model_file`)."""
    import contextlib

    from tqdm import tqdm

    if len(models) < 2:
        raise ValueError("compare needs a reference model and at least one model to compare with it")
    with contextlib.ExitStack() as stack:
        segmenters, stats = [], []
        for m in models:
            path = stack.enter_context(model_file(m, **(export_args or {})))
            seg = Segmenter(str(path), backend=backend, crf=None)
            segmenters.append(seg)
            stats.append(ModelStats(m, backend=seg.backend.name, precision=seg.meta.precision,
                                    size_mb=Path(path).stat().st_size / 2**20))
        class_names = list(segmenters[0].meta.class_names)
        for seg, m in zip(segmenters[1:], models[1:]):
            if list(seg.meta.class_names) != class_names:
                raise ValueError(f"{m} has other classes than the reference {models[0]}")
        pairs, total, data_names = _images(data, split)
        if data_names is not None and data_names != class_names:
            raise ValueError(f"the dataset's classes ({len(data_names)}) differ from the model's ({len(class_names)})")
        if max_images is not None:
            total = min(total, max_images)
        cms = [ConfusionMatrix(len(class_names)) for _ in models]
        labelled = False
        for image, truth in tqdm(itertools.islice(pairs, total), total=total, desc="compare", unit="img",
                                 disable=None if progress else True):
            ref_logits = ref_labels = None
            for seg, s, cm in zip(segmenters, stats, cms):
                if not s.latencies_ms:
                    seg.infer(image)  # warm-up (lazy initialization, allocations) outside the timing
                start = time.perf_counter()
                logits, padding = seg.infer(image)
                s.latencies_ms.append(1000 * (time.perf_counter() - start))
                labels = seg.labels(logits, padding)
                h, w = logits_size(padding, seg.meta.output_stride)
                logits = logits[:, :h, :w]
                if ref_logits is None:
                    ref_logits, ref_labels = logits.astype(np.float64), labels
                s.add_pair(labels, ref_labels, logits, ref_logits)
                if truth is not None:
                    cm.update(truth, labels)
                    labelled = True
        if labelled:
            for s, cm in zip(stats, cms):
                s.confusion = cm.matrix
        for seg in segmenters:
            seg.backend.close()
    return stats, class_names


def run(args: argparse.Namespace) -> int:
    stats, class_names = compare(args.models, args.data, split=args.split, backend=args.backend,
                                 max_images=args.max_images, progress=not args.no_progress,
                                 export_args=source_args(args))
    n = len(stats[0].latencies_ms)
    print(f"{n} images from {args.data}; reference: {args.models[0]}")
    print(format_summary(stats))
    classes = format_classes(stats, class_names)
    if classes:
        print()
        print(classes)
    if args.json:
        report = {"data": str(args.data), "split": args.split, "images": n, "reference": args.models[0],
                  "class_names": class_names, "models": [s.to_dict(class_names, stats[0]) for s in stats]}
        atomic_write_text(args.json, json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.json}", file=sys.stderr)
    return 0
