"""`python -m export triton`: a Triton Inference Server model repository for a DeepLab v2 model.

The repository holds four models (templates in ``export/triton_models/``):

- ``deeplab_dcnn``: the network, as a TensorRT engine (``tensorrt_plan``), an ONNX model (``onnxruntime_onnx``) or a
  Python-backend model that runs the toolkit's own runtime backend (``python``, for servers with neither);
- ``deeplab_pre`` / ``deeplab_post``: Python-backend models that run the toolkit's preprocessing and its upsampling,
  softmax and dense CRF (:mod:`runtime.triton_serving`);
- ``deeplab``: the ensemble, ``IMAGE`` (N×H×W×3 uint8 BGR) in, ``LABELS`` (N×H×W) out; ``deeplab_probs``: the same
  with ``PROBS`` (N×C×H×W float32) too.

Every model's config carries the :class:`runtime.metadata.ModelMeta` JSON as the parameter ``deeplab_meta``, so
Python models and clients read the preprocessing and class names from the server itself.

The network's input and output keep the model's own data types (an fp16-I/O ONNX or engine is served as FP16):
``deeplab_pre`` casts its output and ``deeplab_post`` its input to them. A model whose batch dimension is fixed (an
ONNX with a static N, an engine whose profile has one N) cannot take Triton's batch dimension: every model of the
repository then has ``max_batch_size: 0`` and full dims, N included.
"""
from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from string import Template

import numpy as np

import crf

from export.onnx_graph import io_tensor, load_onnx, read_meta
from runtime import named
from runtime.atomic import check_writable, make_dirs
from runtime.backends import ENGINE_SUFFIXES
from runtime.backends.triton import TRITON_FLOAT_DTYPES
from runtime.engine_info import read_sidecar, sidecar_path
from runtime.metadata import TRITON_META_PARAMETER, MetadataError, ModelMeta

DCNN_BACKENDS = ("tensorrt_plan", "onnxruntime_onnx", "python")
MODEL_NAMES = ("deeplab", "deeplab_probs", "deeplab_pre", "deeplab_dcnn", "deeplab_post")
TEMPLATES = Path(__file__).with_name("triton_models")
# numpy dtype name -> Triton data type, for the types deeplab_pre and deeplab_post can cast to and from.
_DTYPE_TO_TRITON = {np.dtype(v).name: k for k, v in TRITON_FLOAT_DTYPES.items()}


class TritonExportError(RuntimeError):
    """The repository cannot be written for this model and these options; one line."""


@dataclass(frozen=True)
class TensorSpec:
    """One network input or output as Triton sees it: dims without the batch dimension, -1 where dynamic."""

    name: str
    data_type: str
    dims: tuple[int, ...]


@dataclass(frozen=True)
class SourceModel:
    """The network to serve and what Triton needs to know about it."""

    path: Path
    kind: str  # "onnx" | "engine"
    meta: ModelMeta
    input: TensorSpec
    output: TensorSpec
    max_batch: int | None  # the largest batch the model accepts (an engine profile's max N); None = any
    fixed_batch: int | None = None  # the one N the model takes (a static ONNX N, a one-N engine profile); None = any

    def lead_dims(self) -> tuple[int, ...]:
        """What precedes a tensor's dims in the configs: nothing when Triton batches, the fixed N when it cannot."""
        return () if self.fixed_batch is None else (self.fixed_batch,)


def triton_type(dtype: str, what: str) -> str:
    """The Triton data type of a network tensor of numpy dtype name ``dtype``; a type deeplab_pre/deeplab_post cannot
    cast to (bfloat16: numpy has none) is a :class:`TritonExportError`."""
    if dtype not in _DTYPE_TO_TRITON:
        raise TritonExportError(f"{what} is {dtype}: deeplab_pre and deeplab_post cast only to "
                                f"{', '.join(_DTYPE_TO_TRITON)}; export the model with float32 or float16 I/O")
    return _DTYPE_TO_TRITON[dtype]


def load_source(model: str | os.PathLike[str]) -> SourceModel:
    """Read ``model`` (a name such as ``demo``, an ONNX file, or an engine with its ``.json`` sidecar) and its
    metadata."""
    path = Path(named.resolve(model, "model", TritonExportError))
    if not path.is_file():
        raise TritonExportError(f"model file not found: {path}")
    if path.suffix.lower() in ENGINE_SUFFIXES:
        return _engine_source(path)
    if path.suffix.lower() == ".onnx":
        return _onnx_source(path)
    raise TritonExportError(f"{path}: unknown model type (an .onnx model or an engine: {', '.join(ENGINE_SUFFIXES)})")


def _onnx_source(path: Path) -> SourceModel:
    proto = load_onnx(path, load_external_data=False)
    try:
        meta = read_meta(proto, str(path))
    except MetadataError as e:
        raise TritonExportError(str(e)) from None

    def spec(name: str) -> tuple[TensorSpec, int]:
        try:
            dtype, dims = io_tensor(proto, name)
        except ValueError as e:
            raise TritonExportError(f"{path}: {e}") from None
        if len(dims) != 4:
            raise TritonExportError(f"{path}: tensor {name!r} has {len(dims)} dimensions, expected N×C×H×W")
        return TensorSpec(name, triton_type(dtype, f"{path}: tensor {name!r}"), dims[1:]), dims[0]

    inp, batch = spec(meta.input_name)
    out, _ = spec(meta.output_name)
    if out.dims[0] not in (-1, meta.n_classes):
        raise TritonExportError(f"{path}: the graph outputs {out.dims[0]} classes, its metadata lists {meta.n_classes}")
    fixed = batch if batch > 0 else None
    return SourceModel(path, "onnx", meta, inp, TensorSpec(out.name, out.data_type, (meta.n_classes, -1, -1)), fixed,
                       fixed)


def _engine_source(path: Path) -> SourceModel:
    meta, info = read_sidecar(path)
    lo, hi = info.profile["min"], info.profile["max"]
    hw = tuple(lo[i] if lo[i] == hi[i] else -1 for i in (2, 3))
    # The engine's I/O types are its ONNX's, recorded in the sidecar by `export engine`.
    return SourceModel(path, "engine", meta,
                       TensorSpec(meta.input_name, triton_type(info.input_dtype, f"{path}: the engine's input"),
                                  (3, *hw)),
                       TensorSpec(meta.output_name, triton_type(info.output_dtype, f"{path}: the engine's output"),
                                  (meta.n_classes, -1, -1)),
                       info.max_batch, info.max_batch if lo[0] == hi[0] else None)


@dataclass(frozen=True)
class RepositoryOptions:
    """What a user tunes; the defaults suit one GPU (or this CPU) and the DeepLab v2 VOC CRF."""

    dcnn_backend: str | None = None  # None: tensorrt_plan for an engine, onnxruntime_onnx for an ONNX model
    max_batch: int = 8
    instances: int = 1
    crf: bool = True
    crf_preset: str = "default"
    crf_iterations: int | None = None
    queue_delay_us: int = 2000


def pbtxt_string(text: str) -> str:
    """``text`` escaped for a double-quoted protobuf text-format string."""
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _dims(dims: tuple[int, ...]) -> str:
    return ", ".join(str(d) for d in dims)


def _render(template: str, **values: object) -> str:
    values = {"meta_parameter": TRITON_META_PARAMETER, **values}
    text = Template((TEMPLATES / template).read_text()).substitute({k: str(v) for k, v in values.items()})
    return "\n".join(line for line in text.splitlines() if line.strip() != "") + "\n"


def labels_type(meta: ModelMeta) -> str:
    """UINT8 labels for up to 256 classes, else INT32 (the runtime's choice too)."""
    return "TYPE_UINT8" if meta.n_classes <= 256 else "TYPE_INT32"


def dcnn_filename(src: SourceModel, backend: str) -> str:
    """The model file's name in ``deeplab_dcnn/1/``: Triton's defaults for its backends; the python variant keeps the
    source's suffix so the runtime picks the matching backend."""
    if backend == "tensorrt_plan":
        return "model.plan"
    if backend == "onnxruntime_onnx":
        return "model.onnx"
    return "model" + src.path.suffix.lower()


def _instance_group(count: int, kind: str) -> str:
    lines = ["instance_group [", "  {", f"    count: {count}", f"    kind: {kind}"]
    if kind == "KIND_GPU":
        lines += ["    # Several GPUs: list them here (one group per GPU to give each its own count), e.g.",
                  "    # gpus: [ 0, 1 ]",
                  "    # Without `gpus`, every visible GPU runs `count` instances."]
    else:
        lines += ["    # Each instance is a process of its own on the host."]
    return "\n".join(lines + ["  }", "]"])


def max_batch_size(src: SourceModel, opts: RepositoryOptions) -> int:
    """``--max-batch``, capped by what the model accepts (an engine profile's largest N); 0 (no Triton batching) when
    the model's N is fixed."""
    if src.fixed_batch is not None:
        return 0
    return min(opts.max_batch, src.max_batch) if src.max_batch else opts.max_batch


def dcnn_config(src: SourceModel, backend: str, opts: RepositoryOptions) -> str:
    """config.pbtxt of ``deeplab_dcnn`` for one of :data:`DCNN_BACKENDS`."""
    max_batch = max_batch_size(src, opts)
    parameters = optimization = ""
    if backend == "tensorrt_plan":
        platform = 'platform: "tensorrt_plan"'
        group = _instance_group(opts.instances, "KIND_GPU")
        optimization = ("# The engine runs only on the TensorRT version and GPU it was built for (its .json sidecar);\n"
                        "# CUDA graphs cut launch overhead for fixed shapes:\n"
                        "# optimization { cuda { graphs: true } }")
    elif backend == "onnxruntime_onnx":
        platform = 'platform: "onnxruntime_onnx"'
        group = _instance_group(opts.instances, "KIND_GPU") + "\n# No GPU: kind: KIND_CPU."
        optimization = ("# ONNX Runtime can hand the graph to TensorRT on the GPU (FP16, no engine build step):\n"
                        "# optimization { execution_accelerators { gpu_execution_accelerator: [ { name: \"tensorrt\"\n"
                        "#   parameters { key: \"precision_mode\" value: \"FP16\" } } ] } }")
    else:
        platform = 'backend: "python"'
        group = _instance_group(opts.instances, "KIND_CPU")
        parameters = "\n".join([
            "# The python variant runs the toolkit's runtime (runtime.backends.open_backend) on this file and backend",
            "# (auto, onnxruntime, tensorrt); the server's Python must be able to `import runtime`.",
            'parameters: {', '  key: "model_filename"', f'  value: {{ string_value: "{dcnn_filename(src, backend)}" }}',
            '}', 'parameters: {', '  key: "runtime_backend"', '  value: { string_value: "auto" }', '}'])
    model_filename = (f'default_model_filename: "{dcnn_filename(src, backend)}"' if backend != "python" else "")
    if src.fixed_batch is None:
        batching = ("# Dynamic batching: requests for frames of the same size are run as one batch. Raise the queue "
                    "delay to trade\n# latency for larger batches (many cameras), lower it for single-stream "
                    f"latency.\ndynamic_batching {{\n  max_queue_delay_microseconds: {opts.queue_delay_us}\n}}")
    else:
        batching = (f"# The model's batch dimension is fixed at {src.fixed_batch}: no Triton batching "
                    "(max_batch_size 0, N in the dims).")
    lead = src.lead_dims()
    return _render("deeplab_dcnn.pbtxt", variant=backend, stride=src.meta.output_stride, source=src.path.name,
                   platform=platform, max_batch=max_batch, model_filename=model_filename,
                   input_name=src.input.name, input_type=src.input.data_type,
                   input_dims=_dims((*lead, *src.input.dims)), output_name=src.output.name,
                   output_type=src.output.data_type, output_dims=_dims((*lead, *src.output.dims)),
                   batching=batching, instance_group=group, optimization=optimization,
                   meta=pbtxt_string(src.meta.to_json()), parameters=parameters)


def fixed_input_size(src: SourceModel) -> tuple[int, int] | None:
    """The H×W every input must have (an engine built for one size), or None when any multiple of the stride fits."""
    hw = src.input.dims[1:]
    return (hw[0], hw[1]) if all(d > 0 for d in hw) else None


def _pad_to(src: SourceModel) -> str:
    fixed = fixed_input_size(src)
    return "x".join(map(str, fixed)) if fixed else ""


def _lead(src: SourceModel) -> str:
    """The fixed N and a comma, to put before a tensor's dims in a template ("" when Triton batches)."""
    return "".join(f"{n}, " for n in src.lead_dims())


def pre_config(src: SourceModel, max_batch: int, opts: RepositoryOptions) -> str:
    return _render("deeplab_pre.pbtxt", max_batch=max_batch, lead=_lead(src), input_type=src.input.data_type,
                   input_dims=_dims((*src.lead_dims(), *src.input.dims)), instances=opts.instances,
                   meta=pbtxt_string(src.meta.to_json()), pad_to=_pad_to(src))


def post_config(src: SourceModel, max_batch: int, opts: RepositoryOptions) -> str:
    return _render("deeplab_post.pbtxt", max_batch=max_batch, lead=_lead(src), logit_type=src.output.data_type,
                   logit_dims=_dims((*src.lead_dims(), *src.output.dims)), pad_to=_pad_to(src),
                   labels_type=labels_type(src.meta), n_classes=src.meta.n_classes, instances=opts.instances,
                   meta=pbtxt_string(src.meta.to_json()), crf="true" if opts.crf else "false",
                   crf_preset=opts.crf_preset,
                   crf_iterations="" if opts.crf_iterations is None else opts.crf_iterations)


def ensemble_config(src: SourceModel, backend: str, max_batch: int, probs: bool = False) -> str:
    """``deeplab`` (LABELS) or, with ``probs``, ``deeplab_probs`` (LABELS + PROBS). Two ensembles because an
    ensemble asks its steps for every output it maps: labels-only clients must not pay for C×H×W probabilities."""
    probs_output = (',\n  {\n    name: "PROBS"\n    data_type: TYPE_FP32\n'
                    f'    dims: [ {_lead(src)}{src.meta.n_classes}, -1, -1 ]\n  }}') if probs else ""
    probs_map = '\n      output_map { key: "PROBS" value: "PROBS" }' if probs else ""
    return _render("deeplab.pbtxt", name="deeplab_probs" if probs else "deeplab", variant=backend,
                   summary="LABELS (N×H×W) and PROBS (N×C×H×W)" if probs else "LABELS (N×H×W)",
                   max_batch=max_batch, lead=_lead(src), labels_type=labels_type(src.meta), probs_output=probs_output,
                   probs_map=probs_map, input_name=src.input.name, output_name=src.output.name)


def choose_backend(src: SourceModel, requested: str | None) -> str:
    """The ``deeplab_dcnn`` variant for this model; an impossible pair is a :class:`TritonExportError`."""
    backend = requested or ("tensorrt_plan" if src.kind == "engine" else "onnxruntime_onnx")
    if backend not in DCNN_BACKENDS:
        raise TritonExportError(f"unknown DCNN backend {backend!r} (choose from {', '.join(DCNN_BACKENDS)})")
    if backend == "tensorrt_plan" and src.kind != "engine":
        raise TritonExportError(f"tensorrt_plan needs a TensorRT engine; build one first: python -m export engine "
                                f"{src.path} -o model.plan")
    if backend == "onnxruntime_onnx" and src.kind != "onnx":
        raise TritonExportError("onnxruntime_onnx needs the ONNX model the engine was built from")
    return backend


def write_repository(model: str | os.PathLike[str], output: str | os.PathLike[str],
                     opts: RepositoryOptions = RepositoryOptions(), force: bool = False) -> tuple[Path, str]:
    """Write the repository to ``output`` (a new or empty directory, or any with ``force``); returns its path and the
    ``deeplab_dcnn`` variant written.

    The repository is assembled in a temporary sibling directory and renamed into place, so an error or Ctrl-C never
    leaves a half-written repository behind."""
    if opts.max_batch < 1 or opts.instances < 1:
        raise TritonExportError("--max-batch and --instances must be at least 1")
    out = Path(output)
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not force)):
        raise TritonExportError(f"{out} exists and is not an empty directory (use --force to replace it)")
    try:
        check_writable(out, directory=True)  # before the model is read: a read-only place, a parent that is a file
    except OSError as e:
        raise TritonExportError(str(e)) from None
    src = load_source(model)
    backend = choose_backend(src, opts.dcnn_backend)
    max_batch = max_batch_size(src, opts)
    files = {
        "deeplab/config.pbtxt": ensemble_config(src, backend, max_batch),
        "deeplab_probs/config.pbtxt": ensemble_config(src, backend, max_batch, probs=True),
        "deeplab_pre/config.pbtxt": pre_config(src, max_batch, opts),
        "deeplab_dcnn/config.pbtxt": dcnn_config(src, backend, opts),
        "deeplab_post/config.pbtxt": post_config(src, max_batch, opts),
    }
    make_dirs(out.parent, out)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp"))
    try:
        for rel, text in files.items():
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            (tmp / rel).write_text(text)
        for name in ("deeplab", "deeplab_probs"):
            (tmp / name / "1").mkdir()  # an ensemble needs an (empty) version directory
        for name in ("deeplab_pre", "deeplab_post"):
            (tmp / name / "1").mkdir()
            shutil.copyfile(TEMPLATES / f"{name}.py", tmp / name / "1" / "model.py")
        version = tmp / "deeplab_dcnn" / "1"
        version.mkdir()
        target = version / dcnn_filename(src, backend)
        shutil.copyfile(src.path, target)
        if src.kind == "engine":
            shutil.copyfile(sidecar_path(src.path), sidecar_path(target))
        if backend == "python":
            shutil.copyfile(TEMPLATES / "deeplab_dcnn.py", version / "model.py")
        _replace_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out, backend


def _replace_dir(new: Path, target: Path) -> None:
    """Put directory ``new`` at ``target``, removing what was there only once ``new`` is in place."""
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.replace(target, old)
    os.replace(new, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


# ---- CLI: python -m export triton ----

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="'demo', an ONNX model, or a TensorRT engine (with its .json sidecar)")
    parser.add_argument("-o", "--output", type=Path, required=True, metavar="REPO",
                        help="repository directory to write (new or empty, or any with --force)")
    parser.add_argument("--dcnn-backend", choices=DCNN_BACKENDS,
                        help="how Triton runs the network (default: tensorrt_plan for an engine, onnxruntime_onnx for "
                             "ONNX; python runs the toolkit's own runtime, for servers with neither)")
    parser.add_argument("--max-batch", type=int, default=8, help="largest dynamic batch (default 8; an engine's "
                                                                 "profile caps it)")
    parser.add_argument("--instances", type=int, default=1, help="instances of each model per device (default 1)")
    parser.add_argument("--crf-preset", default="default",
                        choices=("default", *crf.PRESETS),
                        help="dense CRF preset of crf.refine (default: the model's own preset if its metadata names "
                             "one, else voc; as runtime.Segmenter)")
    parser.add_argument("--crf-iters", type=int, metavar="N", help="mean-field iterations (default: the preset's)")
    parser.add_argument("--no-crf", action="store_true", help="labels straight from the upsampled logits")
    parser.add_argument("--force", action="store_true", help="replace an existing repository")


def run(args: argparse.Namespace) -> int:
    opts = RepositoryOptions(dcnn_backend=args.dcnn_backend, max_batch=args.max_batch, instances=args.instances,
                             crf=not args.no_crf, crf_preset=args.crf_preset, crf_iterations=args.crf_iters)
    out, backend = write_repository(args.model, args.output, opts, force=args.force)
    print(f"wrote Triton model repository {out} (deeplab_dcnn: {backend}, CRF {'on' if opts.crf else 'off'}, "
          f"max batch {opts.max_batch}, {opts.instances} instance(s)); serve it with: "
          f"tritonserver --model-repository {out}")
    return 0
