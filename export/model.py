"""DeepLab v2 (ResNet bottleneck or VGG-16 backbone + ASPP) as the reference Caffe models define it.

ResNet module names follow kazuto1011/deeplab-pytorch, so its state_dict keys load unchanged:
``layer1.conv1.{conv,bn}``, ``layer{2..5}.block{i}.{reduce,conv3x3,increase,shortcut}.{conv,bn}``, ``aspp.c{i}``; the
multi-scale wrapper :class:`MSC` holds the network as ``base`` (keys ``base.*``). The VGG-16 model keeps the Caffe
layer names: ``conv1_1`` .. ``conv5_3``, and per ASPP branch ``aspp.c{i}.{fc6,fc7,fc8}``.
:class:`CaffeMSC` is the official Caffe multi-scale net (its ``Interp`` arithmetic), a different function from
:class:`MSC`.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

RESNET101_BLOCKS = (3, 4, 23, 3)
ASPP_L = (6, 12, 18, 24)
ASPP_S = (2, 4, 8, 12)
ASPP_S_KAZUTO = (3, 6, 9, 12)  # kazuto1011/deeplab-pytorch's DeepLabV2S_ResNet101_MSC
# Named rate sets (export's --aspp-rates): the rates are not in the weights, so the exporter must be told.
ASPP_RATE_SETS = {"L": ASPP_L, "S": ASPP_S, "S-kazuto": ASPP_S_KAZUTO}
LARGE_FOV = (12,)
MSC_SCALES = (0.5, 0.75)
# The official multi-scale net's input Interp layers: (shrink_factor, zoom_factor) for scale 0.75 and 0.5.
CAFFE_MSC_INTERP = ((4, 3), (2, 1))
VGG_WIDTHS = (64, 128, 256, 512, 512)  # conv1_x .. conv5_x at base width 64
VGG_FC_WIDTH = 1024
OUTPUT_STRIDE = 8
BN_EPS = 1e-5
EXPANSION = 4  # bottleneck output width / inner width


class ConvBnReLU(nn.Sequential):
    """Conv (no bias) → BatchNorm (eps 1e-5) → optional ReLU; children named ``conv``, ``bn``."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int = 1, padding: int = 0,
                 dilation: int = 1, relu: bool = True) -> None:
        super().__init__()
        self.add_module("conv", nn.Conv2d(in_ch, out_ch, kernel, stride, padding, dilation, bias=False))
        self.add_module("bn", nn.BatchNorm2d(out_ch, eps=BN_EPS))
        if relu:
            self.add_module("relu", nn.ReLU())


class Bottleneck(nn.Module):
    """1×1 reduce (carries the stride, Caffe style) → 3×3 dilated → 1×1 increase, plus shortcut, then ReLU."""

    def __init__(self, in_ch: int, out_ch: int, stride: int, dilation: int, projection: bool) -> None:
        super().__init__()
        mid = out_ch // EXPANSION
        self.reduce = ConvBnReLU(in_ch, mid, 1, stride)
        self.conv3x3 = ConvBnReLU(mid, mid, 3, 1, dilation, dilation)
        self.increase = ConvBnReLU(mid, out_ch, 1, relu=False)
        self.shortcut = ConvBnReLU(in_ch, out_ch, 1, stride, relu=False) if projection else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.increase(self.conv3x3(self.reduce(x))) + self.shortcut(x))


class ResLayer(nn.Sequential):
    """``n`` bottlenecks named ``block1..n``; only ``block1`` strides and has a projection shortcut."""

    def __init__(self, n: int, in_ch: int, out_ch: int, stride: int, dilation: int) -> None:
        super().__init__()
        for i in range(n):
            self.add_module(f"block{i + 1}", Bottleneck(in_ch if i == 0 else out_ch, out_ch,
                                                         stride if i == 0 else 1, dilation, i == 0))


class Stem(nn.Sequential):
    """7×7 stride-2 conv + BN + ReLU, then 3×3 stride-2 max-pool with ceil_mode (the Caffe pooling arithmetic)."""

    def __init__(self, out_ch: int) -> None:
        super().__init__()
        self.add_module("conv1", ConvBnReLU(3, out_ch, 7, 2, 3))
        self.add_module("pool", nn.MaxPool2d(3, 2, 1, ceil_mode=True))


class ASPP(nn.Module):
    """Parallel 3×3 convs with bias, dilation = padding = rate, outputs summed; children ``c0..c{k-1}``. ``kernel`` 1
    is DeepLab v1's single 1×1 classifier (the official COCO ``init.caffemodel``), rate 1."""

    def __init__(self, in_ch: int, n_classes: int, rates: Sequence[int], kernel: int = 3) -> None:
        super().__init__()
        for i, rate in enumerate(rates):
            self.add_module(f"c{i}", nn.Conv2d(in_ch, n_classes, kernel, 1, rate * (kernel // 2), rate, bias=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branches = iter(self.children())
        out = next(branches)(x)
        for branch in branches:
            out = out + branch(x)
        return out


class DeepLabV2(nn.Sequential):
    """DeepLab v2: logits at 1/8 of the input (``ceil``-ish: 321 → 41, 513 → 65); no upsampling inside.

    ``blocks`` are the bottlenecks per stage (ResNet-101 by default); ``base_width`` the stem width (64): stage
    outputs are 4, 8, 16 and 32 × base_width. ``aspp_rates``: :data:`ASPP_L` or :data:`ASPP_S`.
    """

    def __init__(self, n_classes: int, blocks: Sequence[int] = RESNET101_BLOCKS, base_width: int = 64,
                 aspp_rates: Sequence[int] = ASPP_L, aspp_kernel: int = 3) -> None:
        super().__init__()
        if aspp_kernel not in (1, 3):
            raise ValueError(f"aspp_kernel must be 3 (ASPP) or 1 (a 1x1 classifier), got {aspp_kernel}")
        if n_classes < 1:
            raise ValueError(f"n_classes must be positive, got {n_classes}")
        if len(blocks) != 4 or min(blocks) < 1:
            raise ValueError(f"blocks must be 4 positive counts, got {tuple(blocks)}")
        if base_width < 1:
            raise ValueError(f"base_width must be positive, got {base_width}")
        if not aspp_rates or min(aspp_rates) < 1:
            raise ValueError(f"aspp_rates must be positive dilations, got {tuple(aspp_rates)}")
        self.n_classes = n_classes
        self.backbone = "resnet"
        self.blocks = tuple(int(b) for b in blocks)
        self.base_width = base_width
        self.aspp_rates = tuple(int(r) for r in aspp_rates)
        self.aspp_kernel = aspp_kernel
        w = base_width
        self.add_module("layer1", Stem(w))
        self.add_module("layer2", ResLayer(blocks[0], w, 4 * w, stride=1, dilation=1))
        self.add_module("layer3", ResLayer(blocks[1], 4 * w, 8 * w, stride=2, dilation=1))
        self.add_module("layer4", ResLayer(blocks[2], 8 * w, 16 * w, stride=1, dilation=2))
        self.add_module("layer5", ResLayer(blocks[3], 16 * w, 32 * w, stride=1, dilation=4))
        self.add_module("aspp", ASPP(32 * w, n_classes, aspp_rates, aspp_kernel))

    def architecture(self) -> dict[str, Any]:
        """What the metadata records about the network."""
        arch = {"backbone": self.backbone, "blocks": list(self.blocks), "base_width": self.base_width,
                "aspp_rates": list(self.aspp_rates)}
        return arch if self.aspp_kernel == 3 else {**arch, "aspp_kernel": self.aspp_kernel}


class VGGHead(nn.Sequential):
    """One DeepLab v2 VGG-16 ASPP branch: ``fc6`` (3×3, dilation = padding = rate) → ReLU → ``fc7`` (1×1) → ReLU →
    ``fc8`` (1×1 to the classes), all with bias; the training's dropout after fc6 and fc7 is the identity here."""

    def __init__(self, in_ch: int, fc_width: int, n_classes: int, rate: int) -> None:
        super().__init__()
        self.add_module("fc6", nn.Conv2d(in_ch, fc_width, 3, 1, rate, rate))
        self.add_module("relu6", nn.ReLU())
        self.add_module("fc7", nn.Conv2d(fc_width, fc_width, 1))
        self.add_module("relu7", nn.ReLU())
        self.add_module("fc8", nn.Conv2d(fc_width, n_classes, 1))


class DeepLabV2VGG(nn.Module):
    """DeepLab v2 VGG-16 (ASPP-L, ASPP-S or LargeFOV) as the official prototxts define it: 3×3 convs with bias and
    ReLU; ``pool1..3`` max 3/2 pad 1 (ceil), ``pool4`` and ``pool5`` max 3/1 pad 1, ``conv5_x`` dilation 2; with
    ``pool5a`` an average pool 3/1 pad 1 (padding counted, as Caffe does) before the heads; one :class:`VGGHead` per
    rate, outputs summed. Logits at 1/8 of the input, the same size as the ResNet's."""

    def __init__(self, n_classes: int, aspp_rates: Sequence[int] = ASPP_L, base_width: int = 64,
                 fc_width: int = VGG_FC_WIDTH, pool5a: bool = False) -> None:
        super().__init__()
        if n_classes < 1 or base_width < 1 or fc_width < 1:
            raise ValueError(f"n_classes, base_width and fc_width must be positive, got {n_classes}, {base_width}, "
                             f"{fc_width}")
        if not aspp_rates or min(aspp_rates) < 1:
            raise ValueError(f"aspp_rates must be positive dilations, got {tuple(aspp_rates)}")
        self.n_classes = n_classes
        self.backbone = "vgg16"
        self.aspp_rates = tuple(int(r) for r in aspp_rates)
        self.base_width = base_width
        self.fc_width = fc_width
        self.pool5a = pool5a
        widths = [w * base_width // 64 for w in VGG_WIDTHS]
        layers: list[tuple[str, nn.Module]] = []
        in_ch = 3
        for stage, (out_ch, n_convs) in enumerate(zip(widths, (2, 2, 3, 3, 3)), start=1):
            dilation = 2 if stage == 5 else 1
            for i in range(1, n_convs + 1):
                layers.append((f"conv{stage}_{i}", nn.Conv2d(in_ch, out_ch, 3, 1, dilation, dilation)))
                layers.append((f"relu{stage}_{i}", nn.ReLU()))
                in_ch = out_ch
            layers.append((f"pool{stage}", nn.MaxPool2d(3, 2 if stage <= 3 else 1, 1, ceil_mode=True)))
        if pool5a:
            layers.append(("pool5a", nn.AvgPool2d(3, 1, 1, ceil_mode=True, count_include_pad=True)))
        self.features = nn.Sequential()
        for name, module in layers:
            self.features.add_module(name, module)
        self.aspp = nn.Module()
        for i, rate in enumerate(self.aspp_rates):
            self.aspp.add_module(f"c{i}", VGGHead(in_ch, fc_width, n_classes, rate))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        heads = iter(self.aspp.children())
        out = next(heads)(x)
        for head in heads:
            out = out + head(x)
        return out

    def architecture(self) -> dict[str, Any]:
        """What the metadata records about the network."""
        return {"backbone": self.backbone, "base_width": self.base_width, "fc_width": self.fc_width,
                "pool5a": self.pool5a, "aspp_rates": list(self.aspp_rates)}


class MSC(nn.Module):
    """Multi-scale inference: logits of the input at scale 1 and at ``scales`` (bilinear, align_corners=False),
    each resized bilinearly to the scale-1 logit size and fused by element-wise max. The network is ``self.base``."""

    def __init__(self, base: DeepLabV2, scales: Sequence[float] = MSC_SCALES) -> None:
        super().__init__()
        self.base = base
        self.scales = tuple(float(s) for s in scales)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.base(x)
        size = logits.shape[2:]
        fused = logits
        for s in self.scales:
            small = self.base(F.interpolate(x, scale_factor=s, mode="bilinear", align_corners=False))
            fused = torch.maximum(fused, F.interpolate(small, size=size, mode="bilinear", align_corners=False))
        return fused


def caffe_interp_size(size: Any, shrink: int = 1, zoom: int = 1) -> Any:
    """Caffe ``Interp``'s output height/width for shrink and zoom factors (no padding): shrink first, then zoom."""
    out = (size - 1) // shrink + 1
    return out + (out - 1) * (zoom - 1)


class CaffeMSC(nn.Module):
    """The official DeepLab v2 multi-scale net: the input resized by Caffe ``Interp`` (align-corners bilinear) to
    :func:`caffe_interp_size` with shrink/zoom 4/3 (``data_res075``) and 2/1 (``data_res05``), each score map resized
    align-corners bilinear to the 1× score map, fused by element-wise max.

    Caffe's own score-map Interps (shrink 3 zoom 4, zoom 2) give the 1× size only where H and W mod 32 are in 1..6
    (e.g. 321, 513); at every other size Caffe's net stops at the size mismatch, and this one resizes to the 1× size."""

    def __init__(self, base: nn.Module) -> None:
        super().__init__()
        self.base = base

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.base(x)
        size = logits.shape[2:]
        fused = logits
        h, w = x.shape[2], x.shape[3]
        for shrink, zoom in CAFFE_MSC_INTERP:
            small = F.interpolate(x, size=(caffe_interp_size(h, shrink, zoom), caffe_interp_size(w, shrink, zoom)),
                                  mode="bilinear", align_corners=True)
            fused = torch.maximum(fused, F.interpolate(self.base(small), size=size, mode="bilinear",
                                                       align_corners=True))
        return fused


def output_size(size: int) -> int:
    """Logit height/width for an input height/width (stem conv, ceil-mode pool, stride-2 reduce conv)."""
    conv1 = (size + 2 * 3 - 7) // 2 + 1
    pool = -(-(conv1 + 2 * 1 - 3) // 2) + 1
    if (pool - 1) * 2 >= conv1 + 1:  # ceil_mode: the last window must start inside the (left-padded) input
        pool -= 1
    return (pool - 1) // 2 + 1
