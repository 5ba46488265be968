"""Checkpoint → ONNX: ``export_onnx()`` for services, ``python -m export onnx`` for people.

The graph takes ``image`` (float32 N×3×H×W, dynamic N, H, W, preprocessed as its metadata says) and returns ``logits``
at 1/8 resolution: the runtime upsamples. The ``deeplab`` metadata property holds :class:`runtime.metadata.ModelMeta`.
Every export is checked with ``onnx.checker`` and with onnxruntime against a float64 run of the PyTorch model (the
float32 model's own rounding is measured alongside and sets the tolerance) before it is written atomically.
"""
from __future__ import annotations

import argparse
import copy
import hashlib
import io
import json
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from runtime import named
from runtime.atomic import atomic_write_bytes, check_writable
from runtime.metadata import CAFFE_BGR_MEAN, ONNX_METADATA_KEY, ModelMeta

DEFAULT_OPSET = 17
MIN_OPSET = 11  # Resize with half_pixel coordinates
MIN_SIZE = 8  # trace/parity input: at least one output-stride cell (MSC halves it)
INPUT_NAME = "image"
OUTPUT_NAME = "logits"
# Parity against float64 PyTorch: the ONNX's relative error may be MAX_REL_ERROR or FLOAT32_ERROR_FACTOR times float32
# PyTorch's own (deep nets with wide BatchNorm statistics, and MSC's input resizes, amplify float32 rounding alike in
# both runtimes); its argmax agreement MIN_ARGMAX_AGREEMENT, or no more than 1 - MIN_ARGMAX_AGREEMENT below float32
# PyTorch's.
MAX_REL_ERROR = 1e-4
FLOAT32_ERROR_FACTOR = 2.0
MIN_ARGMAX_AGREEMENT = 0.999
# Checkpoint meta keys that describe preprocessing and override the Caffe defaults.
PREPROCESSING_KEYS = ("channel_order", "mean", "scale")


class ExportError(RuntimeError):
    """The export failed a check (or its inputs are unusable); one line."""


@dataclass(frozen=True)
class Parity:
    """onnxruntime and float32 PyTorch, each against a float64 run of the PyTorch model, on one random input."""

    shape: tuple[int, ...]
    max_abs_error: float  # onnxruntime vs float64 PyTorch
    rel_error: float  # that / max abs float64 logit
    argmax_agreement: float  # fraction of logit pixels where onnxruntime and float64 PyTorch pick the same class
    torch_rel_error: float  # float32 PyTorch vs float64 PyTorch, same scale
    torch_argmax_agreement: float

    @property
    def tolerance(self) -> float:
        return max(MAX_REL_ERROR, FLOAT32_ERROR_FACTOR * self.torch_rel_error)

    def ok(self) -> bool:
        slack = 1.0 - MIN_ARGMAX_AGREEMENT
        return self.rel_error < self.tolerance and self.argmax_agreement > min(
            MIN_ARGMAX_AGREEMENT, self.torch_argmax_agreement - slack)

    def __str__(self) -> str:
        return (f"parity against float64 PyTorch on {'x'.join(map(str, self.shape))}: relative error onnxruntime "
                f"{self.rel_error:.3g}, float32 PyTorch {self.torch_rel_error:.3g} (tolerance {self.tolerance:.3g}); "
                f"argmax agreement onnxruntime {100 * self.argmax_agreement:.3f} %, float32 PyTorch "
                f"{100 * self.torch_argmax_agreement:.3f} %")


@dataclass(frozen=True)
class ExportResult:
    path: Path
    meta: ModelMeta
    parity: Parity | None


def resolve_checkpoint(spec: str | os.PathLike[str]) -> Path:
    """A name such as ``demo`` (:mod:`runtime.named`) stands for its checkpoint; anything else is a path."""
    return Path(named.resolve(spec, "checkpoint", ExportError))


def sha256_file(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def export_onnx(checkpoint: str | os.PathLike[str], output: str | os.PathLike[str], *, msc: bool = False,
                opset: int = DEFAULT_OPSET, height: int = 321, width: int = 321,
                classes: str | Sequence[str] | None = None, aspp_rates: Sequence[int] | None = None,
                layout: str = "auto", prototxt: str | os.PathLike[str] | None = None,
                check_parity: bool = True, log: Callable[[str], None] = lambda s: None) -> ExportResult:
    """Export a DeepLab v2 checkpoint (``demo`` or a path) to ONNX at ``output``; see :func:`onnx_bytes`.

    ``output`` is written atomically, only after every check passed."""
    _check_output(Path(output), resolve_checkpoint(checkpoint))
    data, meta, parity = onnx_bytes(checkpoint, msc=msc, opset=opset, height=height, width=width, classes=classes,
                                    aspp_rates=aspp_rates, layout=layout, prototxt=prototxt,
                                    check_parity=check_parity, log=log)
    atomic_write_bytes(output, data)
    log(f"wrote {output} ({len(data) / 2**20:.1f} MiB, opset {opset})")
    return ExportResult(Path(output), meta, parity)


def onnx_bytes(checkpoint: str | os.PathLike[str], *, msc: bool = False, opset: int = DEFAULT_OPSET,
               height: int = 321, width: int = 321, classes: str | Sequence[str] | None = None,
               aspp_rates: Sequence[int] | None = None, layout: str = "auto",
               prototxt: str | os.PathLike[str] | None = None, check_parity: bool = True,
               log: Callable[[str], None] = lambda s: None) -> tuple[bytes, ModelMeta, Parity | None]:
    """The checked ONNX model of a checkpoint, in memory: (model bytes, its metadata, the parity figures).

    ``height``/``width``: the size of the trace and parity input (the graph accepts any size). ``classes``: a class
    set (``voc``, ``cityscapes``, ``cocostuff``), a names file, or the names themselves; default the checkpoint's
    names, else the set the class count implies (:func:`export.classes.resolve`). ``layout`` and ``prototxt``: see
    :func:`export.checkpoint.load_model`. Raises :class:`ExportError` or :class:`export.checkpoint.CheckpointError`."""
    from export.checkpoint import load_model
    from export.classes import ClassesError, resolve

    if height < MIN_SIZE or width < MIN_SIZE:
        raise ExportError(f"height and width must be at least {MIN_SIZE}, got {height}x{width}")
    if opset < MIN_OPSET:
        raise ExportError(f"opset {opset} is too old for the bilinear Resize this model needs (use >= {MIN_OPSET})")
    source = resolve_checkpoint(checkpoint)
    model, ckpt = load_model(source, aspp_rates, layout, prototxt)
    try:
        if classes is None or isinstance(classes, str):
            class_set = resolve(classes, model.n_classes, tuple(ckpt.class_names) if ckpt.class_names else None)
        else:
            class_set = resolve(None, model.n_classes, tuple(classes))
    except ClassesError as e:
        raise ExportError(str(e)) from None
    rates_from = ("export option" if aspp_rates else "caffemodel" if ckpt.layout == "caffe"
                  else "checkpoint meta" if ckpt.meta.get("aspp_rates") else "default (L)")
    meta = _model_meta(class_set.names, ckpt, model, msc, sha256_file(source), class_set.metadata(), rates_from)
    log(describe(model, ckpt.layout, class_set.name, model.n_classes, msc))
    notes = [f"ASPP rates {list(model.aspp_rates)} ({rates_from})", *ckpt.notes]
    if ckpt.msc_in_file and not msc:
        notes.append("the file is the official multi-scale net: --msc exports its fused output")
    for note in notes:
        log(f"  {note}")
    net = _wrap(model, msc, ckpt.layout)
    data = graph_bytes(net, meta, opset, height, width)
    parity = None
    if check_parity:
        parity = check_onnx_parity(net, data, height, width)
        log(str(parity))
        if not parity.ok():
            raise ExportError(f"onnxruntime disagrees with PyTorch beyond tolerance (relative error < max("
                              f"{MAX_REL_ERROR:g}, {FLOAT32_ERROR_FACTOR:g}x float32 PyTorch's), argmax agreement > "
                              f"{100 * MIN_ARGMAX_AGREEMENT:g} % or float32 PyTorch's - "
                              f"{100 * (1 - MIN_ARGMAX_AGREEMENT):g}): {parity}")
    return data, meta, parity


def _check_output(output: Path, source: Path) -> None:
    """Fail before the slow work when the output cannot (or must not) be written."""
    if output.is_dir():
        raise ExportError(f"output {output} is a directory; give a file name")
    try:
        check_writable(output)  # a parent that is a file, a read-only place: said now, in the user's terms
    except OSError as e:
        raise ExportError(str(e)) from None
    if not output.parent.is_dir():
        raise ExportError(f"output directory {output.parent} does not exist")
    if output.exists() and source.exists() and output.samefile(source):
        raise ExportError(f"output {output} is the checkpoint itself; choose another name")


# Layouts whose multi-scale inference is the official Caffe net's (isht7's MS_Deeplab computes the same sizes).
CAFFE_MSC_LAYOUTS = ("caffe", "isht7")
_ASPP_NAMES = {(6, 12, 18, 24): "ASPP-L", (2, 4, 8, 12): "ASPP-S", (12,): "LargeFOV"}
_LAYOUT_NAMES = {"caffe": "Caffe", "kazuto": "kazuto", "isht7": "isht7", "adaptsegnet": "AdaptSegNet",
                 "advent": "ADVENT"}


def describe(model: Any, layout: str, class_set: str, n_classes: int, msc: bool) -> str:
    """One line of what was found: ``DeepLab v2 ResNet-101, ASPP-L, 21 classes (VOC), Caffe layout, single scale``."""
    from export.model import RESNET101_BLOCKS

    if model.backbone == "vgg16":
        backbone = "VGG-16" if model.base_width == 64 else f"VGG-16 (width {model.base_width})"
    elif model.blocks == RESNET101_BLOCKS and model.base_width == 64:
        backbone = "ResNet-101"
    else:
        backbone = f"ResNet (blocks {'-'.join(map(str, model.blocks))}, width {model.base_width})"
    rates = _ASPP_NAMES.get(model.aspp_rates, f"ASPP rates {', '.join(map(str, model.aspp_rates))}")
    if getattr(model, "aspp_kernel", 3) == 1:
        rates = "1x1 classifier (DeepLab v1 head)"
    known = {"voc": "VOC", "cityscapes": "Cityscapes", "cocostuff": "COCO-Stuff"}
    scale = "single scale"
    if msc:
        scale = "multi-scale (official Caffe fusion)" if layout in CAFFE_MSC_LAYOUTS else "multi-scale (kazuto's fusion)"
    classes = f"{n_classes} classes" + (f" ({known[class_set]})" if class_set in known else "")
    return f"DeepLab v2 {backbone}, {rates}, {classes}, {_LAYOUT_NAMES.get(layout, layout)} layout, {scale}"


def _wrap(model: Any, msc: bool, layout: str) -> Any:
    from export.model import MSC, CaffeMSC

    if not msc:
        return model
    return (CaffeMSC(model) if layout in CAFFE_MSC_LAYOUTS else MSC(model)).eval()


def _model_meta(names: Sequence[str], ckpt: Any, model: Any, msc: bool, sha256: str,
                classes: dict[str, Any], rates_from: str) -> ModelMeta:
    from export.model import CAFFE_MSC_INTERP, MSC_SCALES, OUTPUT_STRIDE

    ckpt_meta = ckpt.meta
    pre = {k: ckpt_meta[k] for k in PREPROCESSING_KEYS if k in ckpt_meta}
    pre.setdefault("mean", CAFFE_BGR_MEAN)
    arch = {**model.architecture(), "aspp_rates_from": rates_from}
    if msc and ckpt.layout in CAFFE_MSC_LAYOUTS:
        arch["msc"] = {"fusion": "caffe", "interp_shrink_zoom": [list(p) for p in CAFFE_MSC_INTERP]}
    elif msc:
        arch["msc_scales"] = list(MSC_SCALES)
    extra: dict[str, Any] = {"architecture": arch, "layout": ckpt.layout, **classes}
    if isinstance(ckpt_meta.get("crf"), dict):  # the model's own CRF preset: the runtime's default for it
        extra["crf"] = json.loads(json.dumps(ckpt_meta["crf"]))
    other = {k: v for k, v in ckpt_meta.items() if k not in (*PREPROCESSING_KEYS, "aspp_rates", "pool5a", "crf")}
    try:
        extra["checkpoint_meta"] = json.loads(json.dumps(other))
    except (TypeError, ValueError):
        extra["checkpoint_meta"] = {k: repr(v) for k, v in other.items()}
    meta = ModelMeta.from_dict({"class_names": list(names), **pre, "output_stride": OUTPUT_STRIDE,
                                "align_corners": False, "input_name": INPUT_NAME, "output_name": OUTPUT_NAME,
                                "precision": "fp32", "msc": msc, "source_sha256": sha256, "extra": extra})
    return meta


def graph_bytes(net: Any, meta: ModelMeta, opset: int, height: int, width: int) -> bytes:
    """Trace ``net`` with the TorchScript exporter, attach the metadata, run onnx.checker; return the model bytes."""
    import onnx
    import torch

    buf = io.BytesIO()
    dummy = torch.zeros(1, 3, height, width)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer/deprecation chatter; the checks below decide
        try:
            torch.onnx.export(net, (dummy,), buf, dynamo=False, opset_version=opset, do_constant_folding=True,
                              input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                              dynamic_axes={INPUT_NAME: {0: "batch", 2: "height", 3: "width"},
                                            OUTPUT_NAME: {0: "batch", 2: "logit_height", 3: "logit_width"}})
        except Exception as e:  # noqa: BLE001 - the TorchScript exporter raises many types
            raise ExportError(f"torch.onnx.export failed at opset {opset}: {' '.join(str(e).split())[:300]}") from None
    proto = onnx.load_from_string(buf.getvalue())
    _bypass_weight_identities(proto.graph)
    del proto.metadata_props[:]
    entry = proto.metadata_props.add()
    entry.key, entry.value = ONNX_METADATA_KEY, meta.to_json()
    proto.producer_name = "deeplab-deploy"
    proto.doc_string = "DeepLab v2: image (N×3×H×W, see metadata 'deeplab') -> logits at 1/8 resolution"
    try:
        onnx.checker.check_model(proto, full_check=True)
    except onnx.checker.ValidationError as e:
        raise ExportError(f"onnx.checker rejected the exported graph: {' '.join(str(e).split())[:300]}") from None
    return proto.SerializeToString()


def _bypass_weight_identities(graph: Any) -> None:
    """Feed initializers straight to their consumers. The exporter routes weights shared by the MSC branches through
    Identity nodes; quantizers (INT8 Q/DQ) only recognise a conv weight that is an initializer."""
    initializers = {t.name for t in graph.initializer}
    outputs = {o.name for o in graph.output}
    alias = {n.output[0]: n.input[0] for n in graph.node
             if n.op_type == "Identity" and n.input[0] in initializers and n.output[0] not in outputs}
    if not alias:
        return
    kept = [n for n in graph.node if not (n.op_type == "Identity" and n.output[0] in alias)]
    for node in kept:
        for i, name in enumerate(node.input):
            node.input[i] = alias.get(name, name)
    del graph.node[:]
    graph.node.extend(kept)


def check_onnx_parity(net: Any, onnx_bytes: bytes, height: int, width: int, batch: int = 1, seed: int = 0) -> Parity:
    """Run the same random image-like input (0..255 minus the Caffe mean) through onnxruntime (CPU) and float32
    PyTorch, and compare both with a float64 copy of the PyTorch model."""
    import onnxruntime as ort
    import torch

    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 255, (batch, 3, height, width)).astype(np.float32)
    x -= np.asarray(CAFFE_BGR_MEAN, np.float32)[None, :, None, None]
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])
    got = session.run([OUTPUT_NAME], {INPUT_NAME: x})[0]
    with torch.no_grad():
        single = net(torch.from_numpy(x)).numpy()
        exact = copy.deepcopy(net).double()(torch.from_numpy(x).double()).numpy()
    if got.shape != exact.shape:
        raise ExportError(f"onnxruntime logits have shape {got.shape}, PyTorch {exact.shape}")
    scale = float(np.abs(exact).max()) or 1.0
    err = float(np.abs(got - exact).max())
    labels = exact.argmax(1)
    return Parity(tuple(x.shape), err, err / scale, float((got.argmax(1) == labels).mean()),
                  float(np.abs(single - exact).max()) / scale, float((single.argmax(1) == labels).mean()))


# ---- CLI: python -m export onnx ----

def add_source_arguments(parser: argparse.ArgumentParser) -> None:
    """How a checkpoint is read and named (shared by every command that takes one)."""
    from export.layouts import LAYOUTS

    parser.add_argument("--layout", choices=LAYOUTS, default="auto",
                        help="key layout of a .pth: kazuto (deeplab-pytorch), isht7 (Scale.*), adaptsegnet (only "
                             "ASPP branches 0 and 1 count), advent; caffe for a .caffemodel (default auto: from the "
                             "keys where they leave no doubt)")
    parser.add_argument("--prototxt", type=Path, metavar="FILE",
                        help="the caffemodel's deploy .prototxt: checked against the weights")
    parser.add_argument("--classes", metavar="SET|FILE",
                        help="class names and palette: voc, cityscapes, cocostuff or a file with one name per line "
                             "(default: the checkpoint's, else by class count: 21 VOC, 19 Cityscapes, 182 COCO-Stuff)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", help="checkpoint file (.pt/.pth, or an official .caffemodel), or 'demo' for the "
                                           "bundled demo model")
    parser.add_argument("-o", "--output", type=Path, help="ONNX file to write (default: <checkpoint name>.onnx in "
                                                          "the current directory)")
    parser.add_argument("--msc", action="store_true", help="multi-scale inference (scales 1, 0.75, 0.5, max-fused; "
                                                           "a caffemodel's and isht7's with Caffe's Interp arithmetic, "
                                                           "about 1.8x the FLOPs of single scale)")
    parser.add_argument("--opset", type=int, default=DEFAULT_OPSET,
                        help=f"ONNX opset (default {DEFAULT_OPSET}, the highest TensorRT 8.5/8.6 parse)")
    parser.add_argument("--height", type=int, default=321, help="trace and parity-check input height (default 321; "
                                                                "the graph accepts any size)")
    parser.add_argument("--width", type=int, default=321, help="trace and parity-check input width (default 321)")
    add_source_arguments(parser)
    parser.add_argument("--aspp-rates", type=aspp_rates, metavar="RATES",
                        help="ASPP dilation rates, which cannot be read from a .pth's weights: comma-separated "
                             "integers (3,6,9,12) or a named set: L = 6,12,18,24 (DeepLab v2), S = 2,4,8,12 (DeepLab "
                             "v2 ASPP-S), S-kazuto = 3,6,9,12 (kazuto1011/deeplab-pytorch's DeepLabV2S). Default: the "
                             "checkpoint's meta, else L; a caffemodel has its own")
    parser.add_argument("--no-parity", action="store_true", help="skip the onnxruntime-vs-PyTorch check")


def aspp_rates(text: str) -> tuple[int, ...]:
    """--aspp-rates: a named set (export.model.ASPP_RATE_SETS, any case) or comma-separated positive integers."""
    from export.model import ASPP_RATE_SETS

    named_sets = {k.lower(): v for k, v in ASPP_RATE_SETS.items()}
    if text.strip().lower() in named_sets:
        return named_sets[text.strip().lower()]
    try:
        rates = tuple(int(r) for r in text.split(","))
    except ValueError:
        rates = ()
    if not rates or min(rates) < 1:
        raise argparse.ArgumentTypeError(f"expected {', '.join(ASPP_RATE_SETS)} or positive integers such as "
                                         f"3,6,9,12, got {text!r}")
    return rates


def run(args: argparse.Namespace) -> int:
    output = args.output or Path(Path(str(args.checkpoint)).stem + ".onnx")
    export_onnx(args.checkpoint, output, msc=args.msc, opset=args.opset, height=args.height, width=args.width,
                classes=args.classes, aspp_rates=args.aspp_rates, layout=args.layout, prototxt=args.prototxt,
                check_parity=not args.no_parity, log=print)
    return 0
