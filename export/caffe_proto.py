"""Caffe's ``NetParameter`` without Caffe: a minimal schema of our own, built with protobuf's descriptor API.

Only the fields a DeepLab v2 import needs are declared (field numbers are those of DeepLab's ``caffe.proto``, whose
``interp_param`` is field 143); every other field of a real file is skipped as unknown. Both the binary
``.caffemodel`` and the text ``.prototxt`` parse into the same :class:`CaffeLayer` list, from the ``layer`` field or
the V1 ``layers`` field.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from google.protobuf import descriptor_pb2, descriptor_pool, message, message_factory, text_format

_F = descriptor_pb2.FieldDescriptorProto
_OPTIONAL, _REPEATED = _F.LABEL_OPTIONAL, _F.LABEL_REPEATED
_TYPES = {"int32": _F.TYPE_INT32, "uint32": _F.TYPE_UINT32, "int64": _F.TYPE_INT64, "float": _F.TYPE_FLOAT,
          "double": _F.TYPE_DOUBLE, "bool": _F.TYPE_BOOL, "string": _F.TYPE_STRING}
_PACKAGE = "deeplab_caffe"

# message -> (field name, number, type or message/enum name, repeated, default); an enum type is written "enum:Name".
_MESSAGES: dict[str, list[tuple[str, int, str, bool, str | None]]] = {
    "BlobShape": [("dim", 1, "int64", True, None)],
    "BlobProto": [("num", 1, "int32", False, None), ("channels", 2, "int32", False, None),
                  ("height", 3, "int32", False, None), ("width", 4, "int32", False, None),
                  ("data", 5, "float", True, None), ("shape", 7, "BlobShape", False, None),
                  ("double_data", 8, "double", True, None)],
    "ConvolutionParameter": [("num_output", 1, "uint32", False, None), ("bias_term", 2, "bool", False, "true"),
                             ("pad", 3, "uint32", True, None), ("kernel_size", 4, "uint32", True, None),
                             ("group", 5, "uint32", False, "1"), ("stride", 6, "uint32", True, None),
                             ("pad_h", 9, "uint32", False, None), ("pad_w", 10, "uint32", False, None),
                             ("kernel_h", 11, "uint32", False, None), ("kernel_w", 12, "uint32", False, None),
                             ("stride_h", 13, "uint32", False, None), ("stride_w", 14, "uint32", False, None),
                             ("dilation", 18, "uint32", True, None)],
    "PoolingParameter": [("pool", 1, "enum:PoolMethod", False, "MAX"), ("kernel_size", 2, "uint32", False, None),
                         ("stride", 3, "uint32", False, "1"), ("pad", 4, "uint32", False, None),
                         ("kernel_h", 5, "uint32", False, None), ("kernel_w", 6, "uint32", False, None),
                         ("stride_h", 7, "uint32", False, None), ("stride_w", 8, "uint32", False, None),
                         ("pad_h", 9, "uint32", False, None), ("pad_w", 10, "uint32", False, None),
                         ("global_pooling", 12, "bool", False, None)],
    "InterpParameter": [("height", 1, "int32", False, None), ("width", 2, "int32", False, None),
                        ("zoom_factor", 3, "int32", False, "1"), ("shrink_factor", 4, "int32", False, "1"),
                        ("pad_beg", 5, "int32", False, None), ("pad_end", 6, "int32", False, None)],
    "BatchNormParameter": [("use_global_stats", 1, "bool", False, None),
                           ("moving_average_fraction", 2, "float", False, "0.999"), ("eps", 3, "float", False, "1e-5")],
    "ScaleParameter": [("axis", 1, "int32", False, "1"), ("num_axes", 2, "int32", False, "1"),
                       ("bias_term", 4, "bool", False, None)],
    "EltwiseParameter": [("operation", 1, "enum:EltwiseOp", False, "SUM"), ("coeff", 2, "float", True, None)],
    "LayerParameter": [("name", 1, "string", False, None), ("type", 2, "string", False, None),
                       ("bottom", 3, "string", True, None), ("top", 4, "string", True, None),
                       ("blobs", 7, "BlobProto", True, None),
                       ("convolution_param", 106, "ConvolutionParameter", False, None),
                       ("eltwise_param", 110, "EltwiseParameter", False, None),
                       ("pooling_param", 121, "PoolingParameter", False, None),
                       ("batch_norm_param", 139, "BatchNormParameter", False, None),
                       ("scale_param", 142, "ScaleParameter", False, None),
                       ("interp_param", 143, "InterpParameter", False, None)],
    "V1LayerParameter": [("bottom", 2, "string", True, None), ("top", 3, "string", True, None),
                         ("name", 4, "string", False, None), ("type", 5, "enum:V1Type", False, None),
                         ("blobs", 6, "BlobProto", True, None),
                         ("convolution_param", 10, "ConvolutionParameter", False, None),
                         ("pooling_param", 19, "PoolingParameter", False, None),
                         ("eltwise_param", 24, "EltwiseParameter", False, None)],
    "NetParameter": [("name", 1, "string", False, None), ("layers", 2, "V1LayerParameter", True, None),
                     ("input", 3, "string", True, None), ("input_dim", 4, "int32", True, None),
                     ("input_shape", 8, "BlobShape", True, None), ("layer", 100, "LayerParameter", True, None)],
}
# enum -> its values; each is declared inside the message that uses it (enum values share their parent's scope).
_ENUMS: dict[str, dict[str, int]] = {
    "PoolMethod": {"MAX": 0, "AVE": 1, "STOCHASTIC": 2},
    "EltwiseOp": {"PROD": 0, "SUM": 1, "MAX": 2},
    # The V1 layer types; the import maps them to the type strings of the current format.
    "V1Type": {"NONE": 0, "ACCURACY": 1, "BNLL": 2, "CONCAT": 3, "CONVOLUTION": 4, "DATA": 5, "DROPOUT": 6,
               "EUCLIDEAN_LOSS": 7, "FLATTEN": 8, "HDF5_DATA": 9, "HDF5_OUTPUT": 10, "IM2COL": 11, "IMAGE_DATA": 12,
               "INFOGAIN_LOSS": 13, "INNER_PRODUCT": 14, "LRN": 15, "MULTINOMIAL_LOGISTIC_LOSS": 16, "POOLING": 17,
               "RELU": 18, "SIGMOID": 19, "SOFTMAX": 20, "SOFTMAX_LOSS": 21, "SPLIT": 22, "TANH": 23,
               "WINDOW_DATA": 24, "ELTWISE": 25, "POWER": 26, "SIGMOID_CROSS_ENTROPY_LOSS": 27, "HINGE_LOSS": 28,
               "MEMORY_DATA": 29, "ARGMAX": 30, "THRESHOLD": 31, "DUMMY_DATA": 32, "SLICE": 33, "MVN": 34,
               "ABSVAL": 35, "SILENCE": 36, "CONTRASTIVE_LOSS": 37, "EXP": 38, "DECONVOLUTION": 39},
}
V1_TYPE_NAMES = {"CONVOLUTION": "Convolution", "POOLING": "Pooling", "RELU": "ReLU", "ELTWISE": "Eltwise",
                 "DROPOUT": "Dropout", "INNER_PRODUCT": "InnerProduct", "SOFTMAX": "Softmax", "CONCAT": "Concat",
                 "DATA": "Data", "SPLIT": "Split", "SOFTMAX_LOSS": "SoftmaxWithLoss", "DECONVOLUTION": "Deconvolution"}


class CaffeFormatError(ValueError):
    """A Caffe file that cannot be read; one line."""


@dataclass
class CaffeLayer:
    """One layer: what the import reads, independent of the file's format (V1 or current, binary or text)."""

    name: str
    type: str
    bottoms: list[str]
    tops: list[str]
    blobs: list[np.ndarray] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)  # e.g. "convolution_param" -> the message


@lru_cache(maxsize=1)
def _classes() -> dict[str, Any]:
    fdp = descriptor_pb2.FileDescriptorProto(name="deeplab_caffe_minimal.proto", package=_PACKAGE, syntax="proto2")
    for msg_name, fields in _MESSAGES.items():
        msg = fdp.message_type.add(name=msg_name)
        for name, number, kind, repeated, default in fields:
            if kind.startswith("enum:"):
                enum = msg.enum_type.add(name=kind[5:])
                for value_name, value in _ENUMS[kind[5:]].items():
                    enum.value.add(name=value_name, number=value)
            f = msg.field.add(name=name, number=number, label=_REPEATED if repeated else _OPTIONAL)
            if kind in _TYPES:
                f.type = _TYPES[kind]
            elif kind.startswith("enum:"):
                f.type, f.type_name = _F.TYPE_ENUM, f".{_PACKAGE}.{msg_name}.{kind[5:]}"
            else:
                f.type, f.type_name = _F.TYPE_MESSAGE, f".{_PACKAGE}.{kind}"
            if default is not None:
                f.default_value = default
            if repeated and kind in ("int64", "float", "double"):
                f.options.packed = True
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return {name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{_PACKAGE}.{name}"))
            for name in _MESSAGES}


def message_class(name: str) -> Any:
    """The generated class of one schema message (``NetParameter``, ``LayerParameter``, ``BlobProto``, ...)."""
    return _classes()[name]


def read_caffemodel(path: str | os.PathLike[str]) -> list[CaffeLayer]:
    """The layers of a binary ``.caffemodel``; raises :class:`CaffeFormatError`."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise CaffeFormatError(f"cannot read {path}: {e.strerror or e}") from None
    if not data:
        raise CaffeFormatError(f"{path}: file is empty")
    net = message_class("NetParameter")()
    try:
        net.ParseFromString(data)
    except message.DecodeError:
        raise CaffeFormatError(f"{path}: truncated or corrupt caffemodel (the protobuf message does not parse)"
                               ) from None
    layers = _layers(net, path)
    if not layers:
        raise CaffeFormatError(f"{path}: not a caffemodel (no layers in the NetParameter)")
    return layers


def read_prototxt(path: str | os.PathLike[str]) -> list[CaffeLayer]:
    """The layers of a text ``.prototxt`` (fields this schema does not declare are skipped)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise CaffeFormatError(f"cannot read {path}: {e}") from None
    net = message_class("NetParameter")()
    try:
        text_format.Parse(text, net, allow_unknown_field=True)
    except text_format.ParseError as e:
        raise CaffeFormatError(f"{path}: not a Caffe prototxt ({' '.join(str(e).split())[:200]})") from None
    layers = _layers(net, path)
    if not layers:
        raise CaffeFormatError(f"{path}: the prototxt defines no layers")
    return layers


_PARAMS = ("convolution_param", "pooling_param", "eltwise_param", "batch_norm_param", "scale_param", "interp_param")


def _layers(net: Any, path: Path) -> list[CaffeLayer]:
    out = []
    for layer in net.layer:
        params = {p: getattr(layer, p) for p in _PARAMS if layer.HasField(p)}
        out.append(CaffeLayer(layer.name, layer.type, list(layer.bottom), list(layer.top),
                              [blob_array(b, f"{path}: layer '{layer.name}' blob {i}") for i, b in
                               enumerate(layer.blobs)], params))
    enum = message_class("V1LayerParameter").DESCRIPTOR.fields_by_name["type"].enum_type
    for layer in net.layers:
        v1_name = enum.values_by_number[layer.type].name if layer.type in enum.values_by_number else str(layer.type)
        params = {p: getattr(layer, p) for p in _PARAMS if p in layer.DESCRIPTOR.fields_by_name and layer.HasField(p)}
        out.append(CaffeLayer(layer.name, V1_TYPE_NAMES.get(v1_name, v1_name), list(layer.bottom), list(layer.top),
                              [blob_array(b, f"{path}: layer '{layer.name}' blob {i}") for i, b in
                               enumerate(layer.blobs)], params))
    return out


def blob_array(blob: Any, where: str) -> np.ndarray:
    """A ``BlobProto`` as a float32 array of its shape (``shape.dim``, else the legacy num/channels/height/width)."""
    if blob.HasField("shape"):
        shape = tuple(int(d) for d in blob.shape.dim)
    else:
        shape = tuple(int(getattr(blob, k)) for k in ("num", "channels", "height", "width"))
        while len(shape) > 1 and shape[0] == 1:  # legacy blobs pad the front with 1s: 1x1x1xN is a vector
            shape = shape[1:]
    values = np.asarray(blob.data if len(blob.data) else blob.double_data, np.float32)
    if values.size != int(np.prod(shape)):
        raise CaffeFormatError(f"{where} has {values.size} values for shape {list(shape)} (truncated or corrupt file)")
    return values.reshape(shape)
