"""Small ONNX graph utilities shared by the INT8 and FP16 converters: model metadata, node order and naming, saving."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from runtime import metadata, named
from runtime.atomic import atomic_path, make_dirs
from runtime.metadata import ONNX_METADATA_KEY, ModelMeta


def load_onnx(path: str | os.PathLike[str], load_external_data: bool = True) -> Any:
    """Read an ONNX file (the one loader of every export command): a missing file, or one that is not an ONNX model
    (protobuf's own message names neither the file nor the problem), is one line naming the file."""
    import onnx

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model {path} does not exist")
    try:
        model = onnx.load(str(path), load_external_data=load_external_data)
    except Exception:  # noqa: BLE001 - protobuf raises several unrelated classes for bytes that are not a ModelProto
        model = None
    if model is None or not model.graph.node:  # an empty or unrelated protobuf parses as an empty ModelProto
        raise ValueError(f"{path} is not a valid ONNX model")
    return model


def read_meta(model: Any, source: str = "the ONNX") -> ModelMeta:
    """The :class:`ModelMeta` stored in an ONNX ModelProto (``deeplab`` metadata property); MetadataError naming
    ``source`` when it is absent or corrupt."""
    return metadata.read_meta({p.key: p.value for p in model.metadata_props}, ONNX_METADATA_KEY, source,
                              "export it with `python -m export onnx`")


# ONNX TensorProto element types a DeepLab graph can have at its boundary -> numpy dtype names.
ONNX_FLOAT_DTYPES = {1: "float32", 10: "float16", 11: "float64", 16: "bfloat16"}


def io_tensor(model: Any, name: str) -> tuple[str, tuple[int, ...]]:
    """(numpy dtype name, dims with -1 where dynamic) of graph input or output ``name``; ValueError if it is missing,
    not a float tensor, or of unknown rank."""
    graph = {v.name: v for v in (*model.graph.input, *model.graph.output)}
    if name not in graph:
        raise ValueError(f"the metadata names tensor {name!r}, the graph has {sorted(graph)}")
    t = graph[name].type.tensor_type
    if t.elem_type not in ONNX_FLOAT_DTYPES:
        raise ValueError(f"tensor {name!r} has ONNX element type {t.elem_type}, not a float type")
    if not t.HasField("shape"):
        raise ValueError(f"tensor {name!r} has no shape in the graph")
    dims = tuple(d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else -1 for d in t.shape.dim)
    return ONNX_FLOAT_DTYPES[t.elem_type], dims


def write_meta(model: Any, meta: ModelMeta, keep_from: Any | None = None) -> None:
    """Set the ``deeplab`` metadata property; other properties are kept (taken from ``keep_from`` when given: converters
    may drop them)."""
    source = keep_from if keep_from is not None else model
    keep = [(p.key, p.value) for p in source.metadata_props if p.key != ONNX_METADATA_KEY]
    del model.metadata_props[:]
    for k, v in keep + [(ONNX_METADATA_KEY, meta.to_json())]:
        entry = model.metadata_props.add()
        entry.key, entry.value = k, v


def opset_version(model: Any) -> int | None:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)


def ensure_node_names(model: Any) -> None:
    """Give every node a unique name (the quantizer selects nodes by name)."""
    seen: set[str] = set()
    for i, n in enumerate(model.graph.node):
        if not n.name or n.name in seen:
            n.name = f"{n.op_type}_{i}"
        seen.add(n.name)


def topological_sort(graph: Any) -> None:
    """Reorder ``graph.node`` so every node comes after the producers of its inputs (stable; in place)."""
    available = {i.name for i in graph.input} | {t.name for t in graph.initializer} | {""}
    ordered: list[Any] = []
    pending = list(graph.node)
    while pending:
        rest = []
        for n in pending:
            if all(i in available for i in n.input):
                ordered.append(n)
                available.update(n.output)
            else:
                rest.append(n)
        if len(rest) == len(pending):
            missing = sorted({i for n in rest for i in n.input if i not in available})
            raise ValueError(f"the graph has a cycle or undefined inputs: {', '.join(missing[:5])}")
        pending = rest
    del graph.node[:]
    graph.node.extend(ordered)


def default_output(model: str, suffix: str) -> Path:
    """MODEL.onnx -> MODEL<suffix> next to it; a name such as ``demo`` -> demo<suffix> in the current directory."""
    return Path(f"{model}.onnx" if named.is_name(model) else model).with_suffix(suffix)


def save_model(model: Any, output: str | os.PathLike[str]) -> Path:
    """``onnx.checker`` then an atomic write."""
    import onnx

    onnx.checker.check_model(model)
    output = Path(output)
    make_dirs(output.parent, output)
    with atomic_path(output) as tmp:
        onnx.save(model, str(tmp))
    return output
