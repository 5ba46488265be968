"""`python -m export int8`: FP32 ONNX -> INT8 Q/DQ ONNX (explicit quantization, opset kept) that every TensorRT from 8.5
to 11 builds, and that onnxruntime runs on a CPU.

onnxruntime's static quantizer does the calibration and inserts the Q/DQ pairs (QDQ format, symmetric int8
activations, per-output-channel symmetric int8 weights, float biases); :func:`place_for_tensorrt` then moves them to
where TensorRT fuses them: on each conv's input and weights, and on only the *residual* input of each residual Add (the
other input comes straight from the conv that the add fuses into). Adds outside residual blocks (the ASPP sum that
produces the logits) stay in float, and no Q/DQ is put on op outputs.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from export.calibration import OrtCalibrationReader, open_calibration
from export.onnx_export import sha256_file
from export.onnx_graph import (default_output, ensure_node_names, load_onnx, opset_version, read_meta, save_model,
                               write_meta)
from runtime.atomic import atomic_write_text, make_dirs
from runtime.backends import resolve_model

METHODS = ("entropy", "minmax", "percentile")
DEFAULT_METHOD = "entropy"  # best ΔmIoU on the demo model (docs/precision.md)
CACHE_KEY = "deeplab_calibration_key"


@dataclass(frozen=True)
class Int8Report:
    output: Path
    convs: int
    residual_adds: int
    calibration_inputs: int  # 0 when the calibration cache was used
    cache_used: bool
    method: str


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="FP32 ONNX exported by `python -m export onnx`, or demo")
    p.add_argument("--calib", required=True, metavar="DIR|FILE.py",
                   help="calibration images (jpg/png, any size) or a .py file defining load_data()")
    p.add_argument("-o", "--output", help="output ONNX (default: MODEL.int8.onnx)")
    p.add_argument("--method", choices=METHODS, default=DEFAULT_METHOD,
                   help=f"calibration method (default: {DEFAULT_METHOD})")
    p.add_argument("--max-images", type=int, default=None, help="use at most N calibration images")
    p.add_argument("--cache", default=None, metavar="FILE",
                   help="calibration cache (JSON): reused when model, data and method match, written otherwise")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    model = resolve_model(args.model)
    output = Path(args.output) if args.output else default_output(args.model, ".int8.onnx")
    r = quantize(model, args.calib, output, method=args.method, max_images=args.max_images, cache=args.cache,
                 progress=not args.no_progress)
    source = "calibration cache" if r.cache_used else f"{r.calibration_inputs} calibration inputs"
    print(f"wrote {r.output}: INT8 Q/DQ, {r.convs} convs quantized, {r.residual_adds} residual adds fused, "
          f"{r.method} calibration from {source}")
    return 0


# --------------------------------------------------------------------------------------------------------------------
# Graph helpers (onnx only)


def _consumers(graph: Any) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for n in graph.node:
        for i in n.input:
            out.setdefault(i, []).append(n)
    return out


def _producers(graph: Any) -> dict[str, Any]:
    return {o: n for n in graph.node for o in n.output}


def residual_adds(graph: Any) -> list[str]:
    """Names of the Adds that close a residual block: both inputs are activations and the output feeds a Relu."""
    consumers = _consumers(graph)
    producers = _producers(graph)
    names = []
    for n in graph.node:
        if n.op_type != "Add" or len(n.input) != 2:
            continue
        if all(i in producers for i in n.input) and any(c.op_type == "Relu" for c in consumers.get(n.output[0], [])):
            names.append(n.name)
    return names


def place_for_tensorrt(model: Any) -> int:
    """Remove the Q/DQ pair on the conv-output input of each quantized Add, so TensorRT fuses the add into that conv
    (the other, residual input keeps its Q/DQ). Returns the number of adds changed. Modifies ``model`` in place."""
    graph = model.graph
    producers = _producers(graph)
    consumers = _consumers(graph)
    order = {id(n): i for i, n in enumerate(graph.node)}
    changed = 0
    dead: set[int] = set()
    for add in graph.node:
        if add.op_type != "Add" or not all(
                producers.get(i) is not None and producers[i].op_type == "DequantizeLinear" for i in add.input):
            continue  # not quantized, or already placed (one input straight from its conv)
        candidates = []  # (topological position of the conv, input slot, conv output, Q, DQ)
        for slot, name in enumerate(add.input):
            dq = producers[name]
            q = producers.get(dq.input[0])
            if q is None or q.op_type != "QuantizeLinear":
                continue
            conv = producers.get(q.input[0])
            if conv is None or conv.op_type != "Conv":
                continue
            # fusable only if the conv's output goes nowhere else and the Q/DQ serves only this add
            if len(consumers.get(q.input[0], [])) == 1 and len(consumers.get(dq.output[0], [])) == 1 \
                    and len(consumers.get(q.output[0], [])) == 1:
                candidates.append((order[id(conv)], slot, q.input[0], q, dq))
        if not candidates:
            continue
        # the main branch is the deeper one: its last conv comes later in topological order
        _, slot, conv_out, q, dq = max(candidates, key=lambda c: c[0])
        add.input[slot] = conv_out
        dead |= {id(q), id(dq)}
        changed += 1
    if dead:
        keep = [n for n in graph.node if id(n) not in dead]
        del graph.node[:]
        graph.node.extend(keep)
        used = {i for n in graph.node for i in n.input}
        keep_init = [t for t in graph.initializer if t.name in used]
        del graph.initializer[:]
        graph.initializer.extend(keep_init)
    return changed


@contextlib.contextmanager
def _quiet_onnxruntime():
    """onnxruntime's quantizer prints per batch and logs pre-processing advice on the root logger: keep it quiet."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        root.setLevel(level)


def _cache_matches(cache: Path, key: dict[str, Any]) -> bool:
    try:
        return json.loads(cache.read_text()).get(CACHE_KEY) == key
    except (OSError, ValueError, AttributeError):
        return False


def _write_cache(ort_cache: Path, cache: Path, key: dict[str, Any]) -> None:
    """Copy onnxruntime's calibration cache to ``cache`` (atomically), stamped with what it was computed from."""
    d = json.loads(ort_cache.read_text())
    d[CACHE_KEY] = key
    make_dirs(cache.parent, cache)
    atomic_write_text(cache, json.dumps(d))


def quantize(model_path: str | os.PathLike[str], calib: str | os.PathLike[str], output: str | os.PathLike[str], *,
             method: str = DEFAULT_METHOD, max_images: int | None = None, cache: str | os.PathLike[str] | None = None,
             progress: bool = True) -> Int8Report:
    """Calibrate ``model_path`` on ``calib`` and write the INT8 Q/DQ model to ``output`` (atomically)."""
    import inspect
    from dataclasses import replace

    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    if method not in METHODS:
        raise ValueError(f"--method must be one of {', '.join(METHODS)}, got {method!r}")
    model_path, output = Path(model_path), Path(output)
    model = load_onnx(model_path)
    meta = read_meta(model)
    ops = {n.op_type for n in model.graph.node}
    if {"QuantizeLinear", "DequantizeLinear"} & ops:
        raise ValueError(f"{model_path} is already quantized (it has Q/DQ nodes): give the FP32 ONNX")
    if any(t.data_type == onnx.TensorProto.FLOAT16 for t in model.graph.initializer):
        raise ValueError(f"{model_path} has fp16 weights: give the FP32 ONNX")
    opset = opset_version(model)
    if opset is None or opset < 13:
        raise ValueError(f"per-channel Q/DQ needs opset ≥ 13, {model_path} has {opset}: re-export with --opset 17")

    ensure_node_names(model)
    convs = [n.name for n in model.graph.node if n.op_type == "Conv"]
    adds = residual_adds(model.graph)
    source = open_calibration(calib, max_images=max_images)
    key = {"model_sha256": sha256_file(model_path), "data_sha256": source.fingerprint(), "method": method,
           "max_images": max_images}
    cache_path = Path(cache) if cache else None
    cache_used = cache_path is not None and cache_path.is_file() and _cache_matches(cache_path, key)
    if cache_path is not None and cache_path.exists() and not cache_used:
        print(f"calibration cache {cache_path} is for other model/data/method: calibrating again", file=sys.stderr)

    calib_method = {"entropy": CalibrationMethod.Entropy, "minmax": CalibrationMethod.MinMax,
                    "percentile": CalibrationMethod.Percentile}[method]
    extra = {
        "ActivationSymmetric": True,  # zero point 0: TensorRT requires symmetric int8
        "WeightSymmetric": True,
        "QuantizeBias": False,  # an int32 bias DQ is not a Q/DQ that TensorRT fuses
        "OpTypesToExcludeOutputQuantization": ["Conv", "Add"],  # nothing on op outputs
        "CalibStridedMinMax": 1,  # one input at a time: bounded memory for histogram calibrators
        "CalibTensorRangeSymmetric": True,
    }
    if method == "percentile":
        extra["CalibPercentile"] = 99.999

    make_dirs(output.parent, output)
    supports_cache = "calibration_cache_path" in inspect.signature(quantize_static).parameters
    if cache_path is not None and not supports_cache:
        raise RuntimeError("--cache needs an onnxruntime whose quantize_static has calibration_cache_path "
                           "(onnxruntime ≥ 1.32)")
    with tempfile.TemporaryDirectory(dir=output.parent, prefix=".int8-") as tmp:
        tmp_dir = Path(tmp)
        src = tmp_dir / "named.onnx"
        onnx.save(model, str(src))
        reader = None if cache_used else OrtCalibrationReader(source, meta, progress=progress)
        work_cache = cache_path if cache_used else (tmp_dir / "calib.json" if cache_path is not None else None)
        kwargs = {"calibration_cache_path": str(work_cache)} if work_cache is not None else {}
        with _quiet_onnxruntime():
            quantize_static(
                str(src), str(tmp_dir / "q.onnx"), reader,
                quant_format=QuantFormat.QDQ, op_types_to_quantize=["Conv", "Add"],
                nodes_to_quantize=convs + adds, per_channel=True, reduce_range=False,
                activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                calibrate_method=calib_method, extra_options=extra, **kwargs)
        if cache_path is not None and not cache_used:
            _write_cache(work_cache, cache_path, key)
        q = onnx.load(str(tmp_dir / "q.onnx"))
    fused = place_for_tensorrt(q)
    write_meta(q, replace(meta, precision="int8"), keep_from=model)
    save_model(q, output)
    return Int8Report(output, len(convs), fused, 0 if reader is None else reader.count, cache_used, method)
