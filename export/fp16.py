"""`python -m export fp16`: FP32 ONNX -> FP16 ONNX (weights and activations fp16, fp32 inputs/outputs by default).

The precision lives in the model itself, which is what strongly typed TensorRT builds (10.x with STRONGLY_TYPED, and
every 11.x build) need; on TensorRT ≤ 10 the builder's FP16 flag on the FP32 ONNX is the other path. The conversion is
onnxruntime's float16 converter (shipped with onnxruntime, the same code as onnxconverter-common), with ops whose
range or accumulation fp16 cannot hold kept in fp32 (its default block list: Max/Min, Range, CumSum, TopK, ...; Resize's
scales stay fp32), followed by a topological sort (the converter appends its boundary Casts at the end of the node
list, which TensorRT's parser rejects).
"""
from __future__ import annotations

import argparse
import os
from dataclasses import replace
from pathlib import Path

from export.onnx_graph import default_output, load_onnx, read_meta, save_model, topological_sort, write_meta
from runtime.backends import resolve_model


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="FP32 ONNX exported by `python -m export onnx`, or demo")
    p.add_argument("-o", "--output", help="output ONNX (default: MODEL.fp16.onnx)")
    p.add_argument("--fp16-io", action="store_true",
                   help="make the model's input and output fp16 too (default: fp32, with Casts inside)")
    p.add_argument("--keep-fp32", nargs="*", default=[], metavar="OP",
                   help="extra operator types to keep in fp32 (in addition to the converter's default list)")


def run(args: argparse.Namespace) -> int:
    model = resolve_model(args.model)
    output = Path(args.output) if args.output else default_output(args.model, ".fp16.onnx")
    n = convert(model, output, keep_io_types=not args.fp16_io, keep_fp32_ops=args.keep_fp32)
    io = "fp16" if args.fp16_io else "fp32"
    print(f"wrote {output}: FP16 weights and activations ({n} nodes), {io} input/output")
    return 0


def convert(model_path: str | os.PathLike[str], output: str | os.PathLike[str], *, keep_io_types: bool = True,
            keep_fp32_ops: list[str] | tuple[str, ...] = ()) -> int:
    """Convert and write atomically; returns the number of nodes in the FP16 model."""
    import onnx
    from onnxruntime.transformers import float16

    model_path = Path(model_path)
    model = load_onnx(model_path)
    meta = read_meta(model)
    if {"QuantizeLinear", "DequantizeLinear"} & {n.op_type for n in model.graph.node}:
        raise ValueError(f"{model_path} is an INT8 Q/DQ model: give the FP32 ONNX")
    if any(t.data_type == onnx.TensorProto.FLOAT16 for t in model.graph.initializer):
        raise ValueError(f"{model_path} already has fp16 weights")
    block = sorted(set(float16.DEFAULT_OP_BLOCK_LIST) | set(keep_fp32_ops))
    m16 = float16.convert_float_to_float16(model, keep_io_types=keep_io_types, op_block_list=block)
    topological_sort(m16.graph)
    write_meta(m16, replace(meta, precision="fp16"), keep_from=model)
    save_model(m16, output)
    return len(m16.graph.node)
