"""deeplab-export (python -m export): a DeepLab v2 checkpoint to ONNX, TensorRT engines and a Triton repository;
evaluate and compare the results.

The command line is a thin argparse layer over the export library.

Each command lives in its own module that defines ``add_arguments(parser)`` and ``run(args) -> int``; add one line to
``COMMANDS`` to register a module. Errors are one line on stderr and a non-zero exit; ``--verbose`` shows tracebacks.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

from runtime.cli_errors import run_command

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "onnx": ("export.onnx_export", "export a DeepLab v2 checkpoint to ONNX (checked against PyTorch)"),
    "fp16": ("export.fp16", "FP32 ONNX -> FP16 ONNX (fp16 weights/activations, fp32 I/O) for strongly typed builds"),
    "compare": ("export.compare", "FP32 vs FP16 vs INT8 (ONNX or engines): argmax agreement, logit error, mIoU, latency"),
    "engine": ("export.engine", "ONNX -> TensorRT engine + metadata sidecar (TensorRT 8.5 to 11)"),
    "int8": ("export.int8", "FP32 ONNX -> INT8 Q/DQ ONNX calibrated on images (explicit quantization, opset kept)"),
    "eval": ("export.evaluate", "mIoU, pixel accuracy and per-class IoU of a model on a VOC-layout dataset, without and with the CRF"),
    "triton": ("export.triton", "write a Triton Inference Server model repository (network, pre/post, ensemble)"),
}


EXTRAS_HELP = ('onnx, fp16, int8 and triton need the export extra (torch, onnx): pip install -e ".[export]" (on a CPU '
               "machine pip install torch==2.13.0 first, so pip does not pull a CUDA build); eval and compare need it "
               "only for a checkpoint (.pt/.pth/.caffemodel; no Caffe needed); engine needs TensorRT (the gpu extra) "
               "and onnx.")


def build_parser() -> argparse.ArgumentParser:
    installed = Path(sys.argv[0]).name == "deeplab-export"  # the console script, else python -m export
    parser = argparse.ArgumentParser(prog="deeplab-export" if installed else "python -m export",
                                     description=" ".join(__doc__.split("\n\n")[0].split()), epilog=EXTRAS_HELP)
    parser.add_argument("--verbose", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("--verbose", action="store_true", default=argparse.SUPPRESS, help="show tracebacks on errors")
        p.set_defaults(_module=module)
        importlib.import_module(module).add_arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_command(lambda: importlib.import_module(args._module).run(args), args.verbose)
