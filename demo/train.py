"""`python -m demo train`: a reduced DeepLab v2 (``export.model.DeepLabV2``: fewer, narrower blocks; ASPP and output
stride 8 kept) trained from scratch on a generated VOC-layout dataset, on the CPU, deterministic from the seed.

Random crops with horizontal flips; the 1/8 logits are upsampled bilinearly (align_corners=False, as the runtime does)
and scored with cross-entropy against the full-resolution labels (255 ignored); AdamW with a polynomial decay.
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from demo.assets import check_not_assets, checkpoint_path, classes_path
from export.onnx_export import export_onnx
from export.voc import VOCDataset, read_classes, write_classes
from runtime.metadata import CAFFE_BGR_MEAN


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 2000
    batch: int = 8
    crop: tuple[int, int] = (192, 192)  # height, width
    lr: float = 2e-3
    weight_decay: float = 1e-4
    blocks: tuple[int, int, int, int] = (1, 1, 1, 1)
    width: int = 16
    backbone: str = "resnet"  # or "vgg16": export.model.DeepLabV2VGG at this base width, ASPP-L (blocks unused)
    seed: int = 0
    threads: int = 2
    object_crops: float = 0.5  # share of crops centred on an object pixel (the rest uniform)


def _blocks(text: str) -> tuple[int, int, int, int]:
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 4 or min(values) < 1:
        raise argparse.ArgumentTypeError(f"blocks must be 4 positive integers like 1,1,1,1, got {text!r}")
    return values  # type: ignore[return-value]


def _crop(text: str) -> tuple[int, int]:
    """``N`` (an N×N square) or ``WxH`` → (height, width)."""
    try:
        w, h = (int(v) for v in text.lower().split("x")) if "x" in text.lower() else (int(text),) * 2
    except ValueError:
        w = h = 0
    if w < 8 or h < 8:
        raise argparse.ArgumentTypeError(f"crop must be a side like 160 or WIDTHxHEIGHT like 320x240 (at least 8), "
                                         f"got {text!r}")
    return h, w


def add_arguments(parser: argparse.ArgumentParser) -> None:
    d = TrainConfig()
    parser.add_argument("--data", required=True, help="VOC-layout dataset (its train split is used)")
    parser.add_argument("--out", required=True, help="checkpoint to write (.pt)")
    parser.add_argument("--onnx", help="also export the checkpoint to this ONNX file (default: --out with the suffix "
                                       ".onnx; '' to skip)")
    parser.add_argument("--update-demo", action="store_true",
                        help="allow --out/--onnx inside demo/assets (replaces the bundled demo model)")
    parser.add_argument("--steps", type=int, default=d.steps, help=f"optimizer steps (default {d.steps})")
    parser.add_argument("--batch", type=int, default=d.batch, help=f"crops per step (default {d.batch})")
    parser.add_argument("--crop", type=_crop, default=d.crop,
                        help="square crop side in pixels, or WIDTHxHEIGHT; the image size trains on whole frames, "
                             f"as the runtime sees them (default {d.crop[1]})")
    parser.add_argument("--lr", type=float, default=d.lr, help=f"peak learning rate (default {d.lr})")
    parser.add_argument("--blocks", type=_blocks, default=d.blocks, help="bottlenecks per stage (default 1,1,1,1)")
    parser.add_argument("--width", type=int, default=d.width, help=f"base width (default {d.width})")
    parser.add_argument("--backbone", choices=("resnet", "vgg16"), default=d.backbone,
                        help="ResNet bottlenecks (default) or DeepLab v2 VGG-16 (ASPP-L heads 16 x width wide)")
    parser.add_argument("--seed", type=int, default=d.seed, help=f"random seed (default {d.seed})")
    parser.add_argument("--threads", type=int, default=d.threads, help=f"torch CPU threads (default {d.threads})")
    parser.add_argument("--init", help="start from this checkpoint's weights (same blocks and width) instead of scratch")


def _load(dataset: VOCDataset) -> tuple[np.ndarray, np.ndarray]:
    """Every image and label of the split in memory (the generated sets are small)."""
    from tqdm import tqdm

    pairs = [dataset[i] for i in tqdm(range(len(dataset)), desc="load", unit="img", disable=None)]
    shapes = {p[0].shape for p in pairs}
    if len(shapes) != 1:
        raise ValueError(f"training images must share one size, found {sorted(shapes)}")
    return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])


def _batch(rng: np.random.Generator, images: np.ndarray, labels: np.ndarray, cfg: TrainConfig,
           mean: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Random crops (zero-padded when the image is smaller; some centred on objects), flipped half of the time;
    preprocessed like the runtime (BGR minus the Caffe mean)."""
    n, h, w = labels.shape
    ch, cw = cfg.crop
    x = np.zeros((cfg.batch, 3, ch, cw), np.float32)
    y = np.full((cfg.batch, ch, cw), 255, np.int64)
    for k, i in enumerate(rng.integers(0, n, cfg.batch)):
        objects = np.flatnonzero((labels[i] != 0) & (labels[i] != 255))
        if objects.size and rng.random() < cfg.object_crops:  # centre the crop on an object pixel
            cy, cx = divmod(int(objects[rng.integers(objects.size)]), w)
            y0 = int(np.clip(cy - ch // 2 + rng.integers(-ch // 4, ch // 4 + 1), 0, max(h - ch, 0)))
            x0 = int(np.clip(cx - cw // 2 + rng.integers(-cw // 4, cw // 4 + 1), 0, max(w - cw, 0)))
        else:
            y0 = int(rng.integers(0, max(h - ch, 0) + 1))
            x0 = int(rng.integers(0, max(w - cw, 0) + 1))
        im = images[i, y0:y0 + ch, x0:x0 + cw].astype(np.float32) - mean
        lb = labels[i, y0:y0 + ch, x0:x0 + cw]
        if rng.random() < 0.5:
            im, lb = im[:, ::-1], lb[:, ::-1]
        x[k, :, : im.shape[0], : im.shape[1]] = im.transpose(2, 0, 1)
        y[k, : lb.shape[0], : lb.shape[1]] = lb
    return x, y


def train(data: str | Path, cfg: TrainConfig, out: str | Path, init: str | Path | None = None) -> dict:
    """Train (from scratch, or from ``init``'s weights) and save the checkpoint ``{"model", "class_names", "meta"}``;
    returns the training summary."""
    import torch
    import torch.nn.functional as F
    from tqdm import tqdm

    from export.checkpoint import save_checkpoint
    from export.model import ASPP_L, DeepLabV2, DeepLabV2VGG

    dataset = VOCDataset(data, "train")
    class_names = dataset.class_names
    if class_names is None:
        raise ValueError(f"{data} has no classes.txt (write one: one class name per line)")
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    rng = np.random.default_rng(cfg.seed)
    images, labels = _load(dataset)
    if labels[(labels != 255)].max(initial=0) >= len(class_names):
        raise ValueError(f"labels in {data} exceed the {len(class_names)} classes of classes.txt")
    mean = np.asarray(CAFFE_BGR_MEAN, np.float32)
    if cfg.backbone == "vgg16":
        model = DeepLabV2VGG(len(class_names), ASPP_L, base_width=cfg.width, fc_width=16 * cfg.width)
    else:
        model = DeepLabV2(len(class_names), blocks=cfg.blocks, base_width=cfg.width)
    if init is not None:
        from export.checkpoint import load_checkpoint, strict_load

        strict_load(model, load_checkpoint(init).state_dict)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    start = time.monotonic()
    bar = tqdm(range(cfg.steps), desc="train", unit="step", disable=None)  # no bar into a log file
    ema = None
    for step in bar:
        for group in opt.param_groups:
            group["lr"] = cfg.lr * (1 - step / cfg.steps) ** 0.9
        x, y = _batch(rng, images, labels, cfg, mean)
        target = torch.from_numpy(y)
        logits = F.interpolate(model(torch.from_numpy(x)), size=target.shape[1:], mode="bilinear",
                               align_corners=False)
        loss = F.cross_entropy(logits, target, ignore_index=255)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        value = loss.item()
        ema = value if ema is None else 0.95 * ema + 0.05 * value
        bar.set_postfix(loss=f"{ema:.3f}")
    model.eval()
    summary = {"config": {**asdict(cfg), "blocks": list(cfg.blocks), "crop": list(cfg.crop)}, "data": provenance(data),
               "images": len(dataset),
               "init": provenance(init) if init is not None else None,
               "final_loss": round(ema or 0.0, 4), "seconds": round(time.monotonic() - start, 1)}
    save_checkpoint(out, model, class_names, {"train": summary})
    return summary


def provenance(path: str | Path) -> str:
    """A file or folder as a checkpoint's meta records it: its name only, never the machine's directory layout
    (the meta travels into every exported model and Triton config)."""
    return Path(path).name


def onnx_beside(checkpoint: str | Path, onnx: str | None) -> str:
    """The ONNX to export ``checkpoint`` to: ``onnx`` as given ('' = none), else the checkpoint's name with .onnx."""
    if onnx is None:
        onnx = str(Path(checkpoint).with_suffix(".onnx"))
    if onnx and Path(onnx).resolve() == Path(checkpoint).resolve():
        raise ValueError(f"the ONNX output {onnx} would overwrite the checkpoint: give it another name")
    return onnx


def run(args: argparse.Namespace) -> int:
    onnx = onnx_beside(args.out, args.onnx)
    check_not_assets([args.out] + ([onnx] if onnx else []), args.update_demo)
    cfg = TrainConfig(steps=args.steps, batch=args.batch, crop=args.crop, lr=args.lr, blocks=args.blocks,
                      width=args.width, backbone=args.backbone, seed=args.seed, threads=args.threads)
    summary = train(args.data, cfg, args.out, args.init)
    print(f"trained {cfg.steps} steps in {summary['seconds']:.0f} s (final loss {summary['final_loss']:.3f})")
    written = [str(args.out)]
    if onnx:  # the export's own lines (parity) go to stderr, without its "wrote": the one line below says it
        result = export_onnx(args.out, onnx, height=240, width=320,
                             log=lambda s: None if s.startswith("wrote ") else print(s, file=sys.stderr))
        written.append(str(result.path))
    print(f"wrote {', '.join(written)}")
    if Path(args.out).resolve() == checkpoint_path():
        write_classes(classes_path().parent, read_classes(Path(args.data) / "classes.txt"))
    return 0
