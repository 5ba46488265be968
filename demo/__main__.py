"""`python -m demo generate|video|train|tune-crf`: the bundled demo's data, sample video, model and CRF settings."""
from __future__ import annotations

import argparse
import sys

from demo import train, tune_crf
from demo.assets import check_not_assets
from demo.dataset import write_dataset, write_images
from demo.video import VIDEO_SEED, write_video
from runtime.cli_errors import run_command


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must be WIDTHxHEIGHT, got {text!r}") from None
    if w < 16 or h < 16:
        raise argparse.ArgumentTypeError(f"size must be at least 16x16, got {text!r}")
    return w, h


def _command(sub: argparse._SubParsersAction, name: str, text: str) -> argparse.ArgumentParser:
    """A subcommand with ``text`` as its help line and description, and its own --verbose."""
    p = sub.add_parser(name, help=text, description=text)
    p.add_argument("--verbose", action="store_true", default=argparse.SUPPRESS, help="show tracebacks on errors")
    return p


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m demo", description=__doc__.splitlines()[0].replace("`", ""))
    parser.add_argument("--verbose", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = _command(sub, "generate", "write generated scenes in the PASCAL VOC layout")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--count", type=int, required=True, help="number of images")
    p.add_argument("--seed", type=int, required=True, help="random seed (image i depends only on seed and i)")
    p.add_argument("--size", type=_size, default=(320, 240), help="WIDTHxHEIGHT (default 320x240)")
    p.add_argument("--val-fraction", type=float, default=0.1,
                   help="share of the images listed in val.txt, the rest in train.txt (default 0.1; 1 for a test set)")
    p.add_argument("--images-only", action="store_true",
                   help="write plain JPEGs into --out, no labels or lists (calibration images)")

    p = _command(sub, "video", "render a video of moving objects (mp4v)")
    p.add_argument("--out", required=True, help="output video file (.mp4)")
    p.add_argument("--frames", type=int, default=90, help="number of frames (default 90)")
    p.add_argument("--seed", type=int, default=VIDEO_SEED, help=f"random seed (default {VIDEO_SEED})")
    p.add_argument("--size", type=_size, default=(384, 288), help="WIDTHxHEIGHT (default 384x288)")
    p.add_argument("--fps", type=float, default=15.0, help="frames per second (default 15)")
    p.add_argument("--labels", help="also write each frame's label PNG into this directory")
    p.add_argument("--update-demo", action="store_true",
                   help="allow --out inside demo/assets (replaces the bundled demo video)")

    p = _command(sub, "train", "train the small DeepLab v2 on a generated VOC-layout dataset; writes --out (and its "
                           "ONNX), never the bundled demo model unless --update-demo")
    train.add_arguments(p)

    p = _command(sub, "tune-crf", "pick a model's CRF settings on a validation split; write the model with them to "
                              "--out (and its ONNX)")
    tune_crf.add_arguments(p)
    return parser


def run(args: argparse.Namespace) -> int:
    if args.command == "generate":
        w, h = args.size
        if args.images_only:
            n = len(write_images(args.out, args.count, args.seed, w, h))
        else:
            n = len(write_dataset(args.out, args.count, args.seed, w, h, args.val_fraction))
        print(f"wrote {n} images to {args.out}")
    elif args.command == "video":
        check_not_assets([args.out], args.update_demo)
        w, h = args.size
        out = write_video(args.out, args.frames, args.seed, w, h, args.fps, args.labels)
        print(f"wrote {args.frames} frames ({w}x{h}) to {out}")
    elif args.command == "train":
        return train.run(args)
    else:
        return tune_crf.run(args)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_command(lambda: run(args), args.verbose)


if __name__ == "__main__":
    sys.exit(main())
