"""DeepLab v2 Caffe files written by the tests: deploy prototxts with the official layer names and caffemodels with
random weights (BatchNorm statistics that are not identity, moving-average factors ``blob[2]`` other than 1).

The structure follows the official DeepLab v2 prototxts: ResNet-101 (``conv1``/``bn_conv1``/``scale_conv1``,
``res{2..5}{a,b,..|a,b1,..}_branch{1,2a,2b,2c}``, ASPP ``fc1_voc12_c{0..3}`` summed into ``fc1_voc12``) and VGG-16
(``conv1_1``..``conv5_3``, ``pool1..5``, per branch ``fc6_i``→``fc7_i``→``fc8_voc12_i`` summed into ``fc8_voc12``,
LargeFOV without the ``_i``), single scale or the multi-scale net (``data_res075``/``data_res05`` Interps, the
``_res075``/``_res05`` copies, ``fc1_voc12_res075_interp``/``fc1_voc12_res05_interp``, ``fc_fusion`` max).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from google.protobuf import text_format

from export.caffe_proto import message_class
from export.model import CAFFE_MSC_INTERP, caffe_interp_size, output_size

# (shrink, zoom) of the official score-map Interps after the 0.75 and 0.5 branches.
SCORE_INTERP = ((3, 4), (1, 2))
CLASSIFIER = {"resnet": "fc1_voc12", "vgg16": "fc8_voc12"}


def _conv(name: str, bottom: str, n_out: int, kernel: int, stride: int = 1, pad: int = 0, dilation: int = 1,
          bias: bool = False) -> str:
    dil = f" dilation: {dilation}" if dilation != 1 else ""
    return (f'layer {{ name: "{name}" type: "Convolution" bottom: "{bottom}" top: "{name}" '
            f'param {{ lr_mult: 1 }} convolution_param {{ num_output: {n_out} kernel_size: {kernel} stride: {stride} '
            f'pad: {pad}{dil} bias_term: {"true" if bias else "false"} weight_filler {{ type: "msra" }} }} }}')


def _bn_scale(bn: str, scale: str, blob: str) -> str:
    return (f'layer {{ name: "{bn}" type: "BatchNorm" bottom: "{blob}" top: "{blob}" '
            f'batch_norm_param {{ use_global_stats: true }} }}\n'
            f'layer {{ name: "{scale}" type: "Scale" bottom: "{blob}" top: "{blob}" scale_param {{ bias_term: true }} }}')


def _relu(name: str, blob: str) -> str:
    return f'layer {{ name: "{name}" type: "ReLU" bottom: "{blob}" top: "{blob}" }}'


def _pool(name: str, bottom: str, kernel: int, stride: int, pad: int, kind: str = "MAX") -> str:
    return (f'layer {{ name: "{name}" type: "Pooling" bottom: "{bottom}" top: "{name}" '
            f'pooling_param {{ pool: {kind} kernel_size: {kernel} stride: {stride} pad: {pad} }} }}')


def _eltwise(name: str, bottoms: Sequence[str], op: str = "SUM") -> str:
    bs = " ".join(f'bottom: "{b}"' for b in bottoms)
    return f'layer {{ name: "{name}" type: "Eltwise" {bs} top: "{name}" eltwise_param {{ operation: {op} }} }}'


def _interp(name: str, bottom: str, *, shrink: int = 1, zoom: int = 1, size: tuple[int, int] | None = None) -> str:
    if size is not None:
        param = f"height: {size[0]} width: {size[1]}"
    else:
        param = " ".join(([f"shrink_factor: {shrink}"] if shrink != 1 else []) +
                         ([f"zoom_factor: {zoom}"] if zoom != 1 else []) + ["pad_beg: 0 pad_end: 0"])
    return f'layer {{ name: "{name}" type: "Interp" bottom: "{bottom}" top: "{name}" interp_param {{ {param} }} }}'


def block_names(n: int) -> list[str]:
    """The official block suffixes of a stage: a, b, c for up to 3 blocks, else a, b1, b2, ..."""
    return [chr(ord("a") + i) for i in range(n)] if n <= 3 else ["a", *[f"b{i}" for i in range(1, n)]]


def resnet_layers(n_classes: int, blocks: Sequence[int], width: int, rates: Sequence[int], s: str = "",
                  data: str = "data") -> list[str]:
    """The ResNet DeepLab v2 layers, names and blobs suffixed with ``s`` (the multi-scale copies)."""
    out = [_conv(f"conv1{s}", data, width, 7, 2, 3), _bn_scale(f"bn_conv1{s}", f"scale_conv1{s}", f"conv1{s}"),
           _relu(f"conv1_relu{s}", f"conv1{s}"), _pool(f"pool1{s}", f"conv1{s}", 3, 2, 1)]
    bottom = f"pool1{s}"
    for stage, n, out_ch, stride, dilation in zip((2, 3, 4, 5), blocks, (4 * width, 8 * width, 16 * width,
                                                                         32 * width), (1, 2, 1, 1), (1, 1, 2, 4)):
        for i, letter in enumerate(block_names(n)):
            b = f"{stage}{letter}"
            st = stride if i == 0 else 1
            shortcut = bottom
            if i == 0:
                out.append(_conv(f"res{b}_branch1{s}", bottom, out_ch, 1, st))
                out.append(_bn_scale(f"bn{b}_branch1{s}", f"scale{b}_branch1{s}", f"res{b}_branch1{s}"))
                shortcut = f"res{b}_branch1{s}"
            mid = out_ch // 4
            out.append(_conv(f"res{b}_branch2a{s}", bottom, mid, 1, st))
            out.append(_bn_scale(f"bn{b}_branch2a{s}", f"scale{b}_branch2a{s}", f"res{b}_branch2a{s}"))
            out.append(_relu(f"res{b}_branch2a_relu{s}", f"res{b}_branch2a{s}"))
            out.append(_conv(f"res{b}_branch2b{s}", f"res{b}_branch2a{s}", mid, 3, 1, dilation, dilation))
            out.append(_bn_scale(f"bn{b}_branch2b{s}", f"scale{b}_branch2b{s}", f"res{b}_branch2b{s}"))
            out.append(_relu(f"res{b}_branch2b_relu{s}", f"res{b}_branch2b{s}"))
            out.append(_conv(f"res{b}_branch2c{s}", f"res{b}_branch2b{s}", out_ch, 1))
            out.append(_bn_scale(f"bn{b}_branch2c{s}", f"scale{b}_branch2c{s}", f"res{b}_branch2c{s}"))
            out.append(_eltwise(f"res{b}{s}", [shortcut, f"res{b}_branch2c{s}"]))
            out.append(_relu(f"res{b}_relu{s}", f"res{b}{s}"))
            bottom = f"res{b}{s}"
    heads = [f"fc1_voc12_c{i}{s}" for i in range(len(rates))]
    for head, rate in zip(heads, rates):
        out.append(_conv(head, bottom, n_classes, 3, 1, rate, rate, bias=True))
    out.append(_eltwise(f"fc1_voc12{s}", heads))
    return out


def vgg_layers(n_classes: int, width: int, fc_width: int, rates: Sequence[int], pool5a: bool = False, s: str = "",
               data: str = "data") -> list[str]:
    """The VGG-16 DeepLab v2 layers (ASPP with ``fc6_i``.. names; LargeFOV, one rate, with ``fc6``..)."""
    out, bottom = [], data
    widths = [width, 2 * width, 4 * width, 8 * width, 8 * width]
    for stage, (ch, n) in enumerate(zip(widths, (2, 2, 3, 3, 3)), start=1):
        d = 2 if stage == 5 else 1
        for i in range(1, n + 1):
            name = f"conv{stage}_{i}{s}"
            out += [_conv(name, bottom, ch, 3, 1, d, d, bias=True), _relu(f"relu{stage}_{i}{s}", name)]
            bottom = name
        out.append(_pool(f"pool{stage}{s}", bottom, 3, 2 if stage <= 3 else 1, 1))
        bottom = f"pool{stage}{s}"
    if pool5a:
        out.append(_pool(f"pool5a{s}", bottom, 3, 1, 1, "AVE"))
        bottom = f"pool5a{s}"
    fc8s = []
    for i, rate in enumerate(rates, start=1):
        t = f"_{i}" if len(rates) > 1 else ""
        fc6, fc7, fc8 = f"fc6{t}{s}", f"fc7{t}{s}", f"fc8_voc12{t}{s}"
        out += [_conv(fc6, bottom, fc_width, 3, 1, rate, rate, bias=True), _relu(f"relu6{t}{s}", fc6),
                f'layer {{ name: "drop6{t}{s}" type: "Dropout" bottom: "{fc6}" top: "{fc6}" }}',
                _conv(fc7, fc6, fc_width, 1, bias=True), _relu(f"relu7{t}{s}", fc7),
                f'layer {{ name: "drop7{t}{s}" type: "Dropout" bottom: "{fc7}" top: "{fc7}" }}',
                _conv(fc8, fc7, n_classes, 1, bias=True)]
        fc8s.append(fc8)
    if len(fc8s) > 1:
        out.append(_eltwise(f"fc8_voc12{s}", fc8s))
    return out


def prototxt(kind: str, n_classes: int, rates: Sequence[int], *, blocks: Sequence[int] = (3, 4, 23, 3),
             width: int = 4, fc_width: int = 32, pool5a: bool = False, msc: bool = False,
             opencv_size: tuple[int, int] | None = None) -> str:
    """A deploy prototxt. ``msc``: the official multi-scale net; ``opencv_size``: that net as OpenCV 4 must be given
    it for an H×W input (OpenCV ignores shrink_factor): the input Interps with Caffe's computed height and width, the
    score-map Interps with the 1× score map's size (what Caffe's arithmetic gives where H, W mod 32 are in 1..6, and
    what our export defines at every other size)."""

    def body(s: str = "", data: str = "data") -> list[str]:
        if kind == "resnet":
            return resnet_layers(n_classes, blocks, width, rates, s, data)
        return vgg_layers(n_classes, width, fc_width, rates, pool5a, s, data)

    h, w = opencv_size or (321, 321)
    lines = ['name: "DeepLab v2"', 'input: "data"', f"input_shape {{ dim: 1 dim: 3 dim: {h} dim: {w} }}", *body()]
    if msc:
        score = CLASSIFIER[kind]
        fused = [score]
        one = (score_size(kind, h), score_size(kind, w))
        for (shrink, zoom), (sshrink, szoom), s in zip(CAFFE_MSC_INTERP, SCORE_INTERP, ("_res075", "_res05")):
            size = (caffe_interp_size(h, shrink, zoom), caffe_interp_size(w, shrink, zoom))
            lines.append(_interp(f"data{s}", "data", shrink=shrink, zoom=zoom, size=size if opencv_size else None))
            lines += body(s, f"data{s}")
            lines.append(_interp(f"{score}{s}_interp", f"{score}{s}", shrink=sshrink, zoom=szoom,
                                 size=one if opencv_size else None))
            fused.append(f"{score}{s}_interp")
        lines.append(_eltwise("fc_fusion", fused, "MAX"))
    return "\n".join(lines) + "\n"


def score_size(kind: str, n: int) -> int:
    """The 1× score map's height/width for an input of n: Caffe's ceil-mode pooling arithmetic."""
    if kind == "resnet":
        return output_size(n)
    for _ in range(3):  # pool1..3: max 3/2 pad 1, ceil mode (pool4/5, pool5a keep the size)
        out = -(-(n + 2 - 3) // 2) + 1
        n = out - 1 if (out - 1) * 2 >= n + 1 else out
    return n


def random_blobs(text: str, seed: int = 0) -> dict[str, list[np.ndarray]]:
    """Blobs for every weighted layer of a prototxt (the multi-scale copies share their base layer's): He-scaled
    convolutions, BatchNorm with non-identity statistics stored times a moving-average factor ``blob[2]`` in
    [0.3, 5), small gammas on each residual branch's last BatchNorm so that depth does not blow the logits up."""
    rng = np.random.default_rng(seed)
    net = parse(text)
    channels: dict[str, int] = {"data": 3}
    out: dict[str, list[np.ndarray]] = {}
    for layer in net.layer:
        base = layer.name
        for suffix in ("_res075", "_res05"):
            base = base[: -len(suffix)] if base.endswith(suffix) else base
        if layer.type in ("Convolution",):
            p = layer.convolution_param
            in_ch = channels[layer.bottom[0]]
            k = p.kernel_size[0]
            if base not in out:
                wt = rng.normal(0, np.sqrt(2.0 / (in_ch * k * k)), (p.num_output, in_ch, k, k)).astype(np.float32)
                out[base] = [wt] + ([rng.normal(0, 0.1, p.num_output).astype(np.float32)] if p.bias_term else [])
            channels[layer.top[0]] = p.num_output
        elif layer.type == "BatchNorm":
            if base not in out:
                c = channels[layer.bottom[0]]
                factor = np.float32(rng.uniform(0.3, 5.0))
                mean = rng.uniform(-0.3, 0.3, c).astype(np.float32)
                var = rng.uniform(0.5, 2.0, c).astype(np.float32)
                out[base] = [mean * factor, var * factor, np.array([factor], np.float32)]
        elif layer.type == "Scale":
            if base not in out:
                c = channels[layer.bottom[0]]
                small = "branch2c" in layer.name
                gamma = rng.uniform(0.1, 0.3, c) if small else rng.uniform(0.5, 1.5, c)
                out[base] = [gamma.astype(np.float32), rng.uniform(-0.2, 0.2, c).astype(np.float32)]
        else:
            for top in layer.top:
                channels[top] = channels[layer.bottom[0]]
    for layer in net.layer:  # the copies: the same arrays, as Caffe writes shared weights
        base = layer.name
        for suffix in ("_res075", "_res05"):
            base = base[: -len(suffix)] if base.endswith(suffix) else base
        if base != layer.name and base in out:
            out[layer.name] = out[base]
    return out


def parse(text: str):
    net = message_class("NetParameter")()
    text_format.Parse(text, net, allow_unknown_field=True)
    return net


def caffemodel_bytes(text: str, blobs: dict[str, list[np.ndarray]]) -> bytes:
    """A binary NetParameter as Caffe's Net::ToProto writes it: every layer of the prototxt, with its blobs."""
    net = parse(text)
    for layer in net.layer:
        for array in blobs.get(layer.name, []):
            blob = layer.blobs.add()
            blob.shape.dim.extend(int(d) for d in array.shape)
            blob.data.extend(array.ravel().tolist())
    return net.SerializeToString()
