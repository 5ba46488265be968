"""Official DeepLab v2 Caffe models (``.caffemodel``, optionally with their ``.prototxt``) as PyTorch modules.

A caffemodel stores every layer's parameters beside its blobs, so the file describes its own network: the import maps
the layers with weights by their official names (ResNet-101: ``conv1``, ``bn_conv1``, ``scale_conv1``,
``res2a_branch2a``, ``bn…``/``scale…``; VGG-16: ``conv1_1`` .. ``conv5_3``), finds the classifier by the graph (the
convolutions fed by the last backbone blob: ResNet ASPP ``fc1_*_c{i}``, VGG ``fc6``→``fc7``→``fc8`` per branch) and then
checks every convolution and pooling layer's kernel, stride, padding and dilation against the module it loads into.
The multi-scale net's copies (``*_res075``, ``*_res05``) share the weights and are skipped.

Caffe semantics: BatchNorm stores mean and variance multiplied by the moving-average factor ``blob[2]`` (0 means 1);
``Scale`` holds gamma and beta; eps is 1e-5.
"""
from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from export.caffe_proto import CaffeLayer, read_caffemodel, read_prototxt
from export.checkpoint import CheckpointError, build_from_state_dict, vgg_from_state_dict
from export.model import BN_EPS

MSC_SUFFIXES = ("_res075", "_res05")
_RES = re.compile(r"^(res|bn|scale)([2-5])([a-z])(\d*)_branch(1|2a|2b|2c)$")
_RES_ROLE = {"1": "shortcut", "2a": "reduce", "2b": "conv3x3", "2c": "increase"}
_VGG_CONV = re.compile(r"^conv([1-5])_([1-3])$")
_WEIGHTED = ("Convolution", "BatchNorm", "Scale", "InnerProduct", "Deconvolution")
_IN_PLACE = ("ReLU", "Dropout")
_LIST_LIMIT = 3


class CaffeImportError(CheckpointError):
    """A caffemodel (or prototxt) that is not a usable DeepLab v2 network; one line."""


@dataclass
class CaffeImport:
    """The imported network and what the file said about itself."""

    model: nn.Module
    state_dict: dict[str, torch.Tensor]
    msc_in_file: bool  # the file is the official multi-scale net (its _res075/_res05 copies were skipped)
    notes: list[str] = field(default_factory=list)


def import_caffe(path: str | os.PathLike[str], prototxt: str | os.PathLike[str] | None = None) -> CaffeImport:
    """Read ``path`` (and check it against ``prototxt``) into a DeepLab v2 module in eval mode.

    Raises :class:`CaffeImportError` or :class:`export.caffe_proto.CaffeFormatError`."""
    path = Path(path)
    layers = read_caffemodel(path)
    if prototxt is not None:
        _merge_prototxt(read_prototxt(prototxt), layers, Path(prototxt), path)
    try:
        return _import(layers)
    except CaffeImportError as e:
        raise CaffeImportError(f"{path}: {e}") from None


def _is_copy(name: str) -> bool:
    return name.endswith(MSC_SUFFIXES)


def _base_name(name: str) -> str:
    for suffix in MSC_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _import(layers: list[CaffeLayer]) -> CaffeImport:
    by_name = {layer.name: layer for layer in layers}
    for layer in layers:
        base = by_name.get(_base_name(layer.name))
        if _is_copy(layer.name) and layer.blobs and base is not None:
            if len(base.blobs) != len(layer.blobs) or any(a.shape != b.shape or not np.array_equal(a, b)
                                                          for a, b in zip(base.blobs, layer.blobs)):
                raise CaffeImportError(f"multi-scale layer '{layer.name}' does not share the weights of "
                                       f"'{base.name}'")
    net = [layer for layer in layers if not _is_copy(layer.name)]
    msc = any(_is_copy(layer.name) for layer in layers)
    names = {layer.name for layer in net}
    if "conv1" in names and any(_RES.match(n) for n in names):
        result = _import_resnet(net)
    elif "conv1_1" in names:
        result = _import_vgg(net)
    else:
        with_weights = [f"{layer.name} ({layer.type})" for layer in net if layer.blobs][:_LIST_LIMIT]
        raise CaffeImportError(f"not a DeepLab v2 network: expected ResNet layers (conv1, res2a_branch2a, ...) or "
                               f"VGG-16 layers (conv1_1, ...); first layers with weights: "
                               f"{', '.join(with_weights) or 'none'}")
    result.msc_in_file = msc
    return result


def _aliases(layers: list[CaffeLayer]) -> Callable[[str], str]:
    """Blob name → the blob it is (in-place ReLU/Dropout, or ones writing a new top, do not change the values' role)."""
    alias: dict[str, str] = {}
    for layer in layers:
        if layer.type in _IN_PLACE and layer.bottoms and layer.tops and layer.tops[0] != layer.bottoms[0]:
            alias[layer.tops[0]] = layer.bottoms[0]

    def resolve(name: str) -> str:
        seen = 0
        while name in alias and seen < len(alias):
            name, seen = alias[name], seen + 1
        return name

    return resolve


def _blob(layer: CaffeLayer, i: int, shape: torch.Size | None = None) -> torch.Tensor:
    if i >= len(layer.blobs):
        raise CaffeImportError(f"layer '{layer.name}' ({layer.type}) has {len(layer.blobs)} blobs, expected at least "
                               f"{i + 1}")
    t = torch.from_numpy(np.ascontiguousarray(layer.blobs[i], np.float32))
    if shape is not None:
        if t.numel() != int(np.prod(shape)):
            raise CaffeImportError(f"layer '{layer.name}' blob {i} has shape {list(t.shape)}, the network needs "
                                   f"{list(shape)}")
        t = t.reshape(shape)
    if not torch.isfinite(t).all():
        raise CaffeImportError(f"layer '{layer.name}' blob {i} has NaN or infinite values")
    return t


def _batch_norm(sd: dict[str, torch.Tensor], prefix: str, bn: CaffeLayer, scale: CaffeLayer | None) -> None:
    """Caffe BatchNorm (+ Scale) → ``prefix.{running_mean,running_var,weight,bias}``."""
    param = bn.params.get("batch_norm_param")
    eps = float(param.eps) if param is not None else BN_EPS
    if not np.isclose(eps, BN_EPS, rtol=1e-3):
        raise CaffeImportError(f"layer '{bn.name}': BatchNorm eps {eps:g}, DeepLab v2 uses {BN_EPS:g}")
    factor = float(_blob(bn, 2).reshape(-1)[0]) if len(bn.blobs) > 2 else 1.0
    factor = 1.0 if factor == 0 else factor
    mean, var = _blob(bn, 0).reshape(-1) / factor, _blob(bn, 1).reshape(-1) / factor
    sd[f"{prefix}.running_mean"], sd[f"{prefix}.running_var"] = mean, var
    sd[f"{prefix}.num_batches_tracked"] = torch.tensor(0)
    if scale is None:
        sd[f"{prefix}.weight"], sd[f"{prefix}.bias"] = torch.ones_like(mean), torch.zeros_like(mean)
    else:
        sd[f"{prefix}.weight"] = _blob(scale, 0).reshape(-1)
        sd[f"{prefix}.bias"] = _blob(scale, 1).reshape(-1) if len(scale.blobs) > 1 else torch.zeros_like(mean)


def _classifier(net: list[CaffeLayer], feature_blob: str, resolve: Callable[[str], str], used: set[str],
                backbone: str) -> list[CaffeLayer]:
    """The convolutions fed by the backbone's last blob, in file order; otherwise one line why there are none."""
    heads = [layer for layer in net if layer.type == "Convolution" and layer.bottoms
             and resolve(layer.bottoms[0]) == feature_blob and layer.name not in used]
    if heads:
        return heads
    foreign = [f"{layer.type} '{layer.name}'" for layer in net if layer.blobs and layer.name not in used]
    if foreign:
        raise CaffeImportError(f"a caffemodel of another network: {backbone} without the DeepLab v2 classifier after "
                               f"'{feature_blob}' (found {', '.join(foreign[:_LIST_LIMIT])})")
    last = next((layer.name for layer in reversed(net) if layer.blobs), "none")
    raise CaffeImportError(f"truncated caffemodel: it ends after layer '{last}' with no classifier after "
                           f"'{feature_blob}'")


def _unused(net: list[CaffeLayer], used: set[str]) -> None:
    left = [f"{layer.name} ({layer.type})" for layer in net if layer.blobs and layer.name not in used]
    if left:
        raise CaffeImportError(f"layers with weights that DeepLab v2 does not have: {', '.join(left[:_LIST_LIMIT])}")


def _import_resnet(net: list[CaffeLayer]) -> CaffeImport:
    resolve = _aliases(net)
    by_name = {layer.name: layer for layer in net}
    sd: dict[str, torch.Tensor] = {}
    geometry: dict[str, CaffeLayer] = {"layer1.conv1.conv": by_name["conv1"]}
    used = {"conv1"}
    sd["layer1.conv1.conv.weight"] = _blob(by_name["conv1"], 0)
    if "bn_conv1" not in by_name:
        raise CaffeImportError("layer 'bn_conv1' (BatchNorm after conv1) is missing")
    _batch_norm(sd, "layer1.conv1.bn", by_name["bn_conv1"], by_name.get("scale_conv1"))
    used |= {"bn_conv1", "scale_conv1"}
    if "pool1" in by_name:
        geometry["layer1.pool"] = by_name["pool1"]
    last_block = ""
    for layer in net:
        m = _RES.match(layer.name)
        if not m:
            continue
        kind, stage, letter, number, branch = m.groups()
        block = int(number) + 1 if number else ord(letter) - ord("a") + 1
        prefix = f"layer{stage}.block{block}.{_RES_ROLE[branch]}"
        used.add(layer.name)
        if kind == "res":
            if layer.type != "Convolution":
                raise CaffeImportError(f"layer '{layer.name}' is a {layer.type}, expected a Convolution")
            sd[f"{prefix}.conv.weight"] = _blob(layer, 0)
            geometry[f"{prefix}.conv"] = layer
            last_block = f"res{stage}{letter}{number}"
        elif kind == "bn":
            _batch_norm(sd, f"{prefix}.bn", layer, by_name.get(f"scale{stage}{letter}{number}_branch{branch}"))
    feature = resolve(last_block) if last_block else "conv1"
    heads = _classifier(net, feature, resolve, used, "ResNet")
    for i, head in enumerate(heads):
        sd[f"aspp.c{i}.weight"] = _blob(head, 0)
        if len(head.blobs) > 1:
            sd[f"aspp.c{i}.bias"] = _blob(head, 1).reshape(-1)
        geometry[f"aspp.c{i}"] = head
        used.add(head.name)
    _unused(net, used)
    rates = tuple(_conv_geometry(head, None)[3] for head in heads)
    model = _build(lambda: build_from_state_dict(sd, rates))
    _check_geometry(model, geometry)
    return CaffeImport(model, sd, False)


def _import_vgg(net: list[CaffeLayer]) -> CaffeImport:
    resolve = _aliases(net)
    by_name = {layer.name: layer for layer in net}
    sd: dict[str, torch.Tensor] = {}
    geometry: dict[str, CaffeLayer] = {}
    used: set[str] = set()
    for layer in net:
        if _VGG_CONV.match(layer.name):
            sd[f"features.{layer.name}.weight"] = _blob(layer, 0)
            sd[f"features.{layer.name}.bias"] = _blob(layer, 1).reshape(-1)
            geometry[f"features.{layer.name}"] = layer
            used.add(layer.name)
    for i in range(1, 6):
        if f"pool{i}" in by_name:
            geometry[f"features.pool{i}"] = by_name[f"pool{i}"]
    pool5a = by_name.get("pool5a")
    if pool5a is not None:
        geometry["features.pool5a"] = pool5a
    last = pool5a or by_name.get("pool5") or by_name.get("conv5_3")
    if last is None or not last.tops:
        raise CaffeImportError("truncated caffemodel or not VGG-16: no layer pool5 or conv5_3")
    feature = resolve(last.tops[0])
    fc6s = _classifier(net, feature, resolve, used, "VGG-16")
    for i, fc6 in enumerate(fc6s):
        chain = [fc6]
        for _ in ("fc7", "fc8"):
            nxt = [layer for layer in net if layer.type == "Convolution" and layer.bottoms
                   and resolve(layer.bottoms[0]) == resolve(chain[-1].tops[0])]
            if len(nxt) != 1:
                raise CaffeImportError(f"VGG-16 head after '{chain[-1].name}': expected one convolution, found "
                                       f"{len(nxt)}")
            chain.append(nxt[0])
        for role, layer in zip(("fc6", "fc7", "fc8"), chain):
            sd[f"aspp.c{i}.{role}.weight"] = _blob(layer, 0)
            sd[f"aspp.c{i}.{role}.bias"] = _blob(layer, 1).reshape(-1)
            geometry[f"aspp.c{i}.{role}"] = layer
            used.add(layer.name)
    _unused(net, used)
    rates = tuple(_conv_geometry(fc6, None)[3] for fc6 in fc6s)
    if "features.conv1_1.weight" not in sd or "aspp.c0.fc6.weight" not in sd:
        raise CaffeImportError("VGG-16 layers conv1_1 and fc6 are required")
    model = _build(lambda: vgg_from_state_dict(sd, rates, pool5a is not None))
    _check_geometry(model, geometry)
    return CaffeImport(model, sd, False)


def _build(make: Callable[[], nn.Module]) -> nn.Module:
    try:
        return make().eval()
    except CheckpointError as e:
        raise CaffeImportError(str(e)) from None


def _conv_geometry(layer: CaffeLayer, blob_kernel: tuple[int, int] | None) -> tuple[int, int, int, int]:
    """(kernel, stride, pad, dilation) of a square Caffe convolution."""
    p = layer.params.get("convolution_param")
    if p is None:
        return (blob_kernel[0] if blob_kernel else 0, 1, 0, 1)
    kernel = p.kernel_size[0] if len(p.kernel_size) else (p.kernel_h or (blob_kernel[0] if blob_kernel else 0))
    stride = p.stride[0] if len(p.stride) else (p.stride_h or 1)
    pad = p.pad[0] if len(p.pad) else p.pad_h
    dilation = p.dilation[0] if len(p.dilation) else 1
    return int(kernel), int(stride), int(pad), int(dilation)


def _pool_geometry(layer: CaffeLayer) -> tuple[str, int, int, int]:
    p = layer.params.get("pooling_param")
    if p is None:
        return ("?", 0, 0, 0)
    kind = p.DESCRIPTOR.fields_by_name["pool"].enum_type.values_by_number[p.pool].name
    return kind, int(p.kernel_size or p.kernel_h), int(p.stride_h or p.stride), int(p.pad or p.pad_h)


def _check_geometry(model: nn.Module, geometry: dict[str, CaffeLayer]) -> None:
    """Every mapped Caffe layer computes what its module computes: kernel, stride, padding, dilation, pooling."""
    for path, layer in geometry.items():
        module = model.get_submodule(path)
        if isinstance(module, nn.Conv2d):
            if "convolution_param" not in layer.params:
                continue
            want = (module.kernel_size[0], module.stride[0], module.padding[0], module.dilation[0])
            got = _conv_geometry(layer, module.kernel_size)
            labels = ("kernel", "stride", "pad", "dilation")
        else:
            if "pooling_param" not in layer.params:
                continue
            kind = "AVE" if isinstance(module, nn.AvgPool2d) else "MAX"
            want = (kind, module.kernel_size, module.stride, module.padding)
            got = _pool_geometry(layer)
            labels = ("pool", "kernel", "stride", "pad")
        for label, g, w in zip(labels, got, want):
            if g != w:
                raise CaffeImportError(f"layer '{layer.name}' has {label} {g}, DeepLab v2 has {w} there")


def _merge_prototxt(proto: list[CaffeLayer], weights: list[CaffeLayer], proto_path: Path, model_path: Path) -> None:
    """Check the prototxt against the caffemodel (first difference: one line), then fill in layer parameters that
    the caffemodel lacks from the prototxt."""
    by_name = {layer.name: layer for layer in weights}
    proto_names = {layer.name for layer in proto}

    def differ(layer: str, what: str) -> CaffeImportError:
        return CaffeImportError(f"{proto_path} disagrees with {model_path} at layer '{layer}': {what}")

    for layer in proto:
        w = by_name.get(layer.name)
        if layer.type in _WEIGHTED and (w is None or not w.blobs):
            if _is_copy(layer.name) and _base_name(layer.name) in by_name:
                continue
            raise differ(layer.name, f"the prototxt's {layer.type} has no weights in the caffemodel")
        if w is None:
            continue
        if w.type != layer.type:
            raise differ(layer.name, f"type {layer.type} vs {w.type}")
        if layer.type == "Convolution":
            p = layer.params.get("convolution_param")
            n_out = int(p.num_output) if p is not None else 0
            if n_out != w.blobs[0].shape[0]:
                raise differ(layer.name, f"num_output {n_out} vs {w.blobs[0].shape[0]} in the weights")
            kernel = tuple(w.blobs[0].shape[-1:]) if w.blobs[0].ndim == 4 else None
            mine, theirs = _conv_geometry(layer, kernel), _conv_geometry(w, kernel)
            if "convolution_param" in w.params and mine != theirs:
                raise differ(layer.name, f"kernel/stride/pad/dilation {mine} vs {theirs}")
        for name, param in layer.params.items():
            if name not in w.params:
                w.params[name] = param
            elif w.params[name] != param and layer.type in ("Pooling", "Interp", "Eltwise"):
                raise differ(layer.name, f"{name} {_one_line(param)} vs {_one_line(w.params[name])}")
    extra = [w.name for w in weights if w.blobs and w.name not in proto_names and not _is_copy(w.name)]
    if extra:
        raise differ(extra[0], "the caffemodel's layer is not in the prototxt")


def _one_line(param: Any) -> str:
    return "{" + " ".join(str(param).split()) + "}"


