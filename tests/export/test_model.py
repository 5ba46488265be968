"""DeepLab v2 model: Caffe layout, output stride 8, port key names, ASPP, MSC."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from export.model import ASPP_L, ASPP_S, MSC, RESNET101_BLOCKS, DeepLabV2, output_size


@pytest.mark.parametrize("hw", [(321, 321), (513, 513), (17, 23), (1, 1), (100, 37), (64, 64), (65, 63)])
def test_output_stride_8_shapes(hw, small_model):
    model = small_model()
    with torch.no_grad():
        out = model(torch.randn(1, 3, *hw))
    assert out.shape == (1, 4, output_size(hw[0]), output_size(hw[1]))


def test_reference_sizes():
    assert output_size(321) == 41 and output_size(513) == 65


def test_resnet101_full_path():
    model = DeepLabV2(21).eval()
    assert model.blocks == RESNET101_BLOCKS and model.aspp_rates == ASPP_L
    sd = model.state_dict()
    assert sd["layer1.conv1.conv.weight"].shape == (64, 3, 7, 7)
    assert sd["layer4.block23.conv3x3.conv.weight"].shape == (256, 256, 3, 3)
    assert sd["layer5.block1.shortcut.conv.weight"].shape == (2048, 1024, 1, 1)
    assert sd["aspp.c3.weight"].shape == (21, 2048, 3, 3) and sd["aspp.c3.bias"].shape == (21,)
    assert "layer5.block2.shortcut.conv.weight" not in sd
    aspp = 4 * (2048 * 9 * 21 + 21)
    assert sum(p.numel() for p in model.parameters()) == 42_500_160 + aspp  # torchvision ResNet-101 minus fc
    with torch.no_grad():
        out = model(torch.randn(1, 3, 33, 47))
    assert out.shape == (1, 21, output_size(33), output_size(47)) == (1, 21, 5, 7)


def test_caffe_layout():
    model = DeepLabV2(3, (2, 2, 2, 2), 8)
    assert model.layer1.pool.ceil_mode and model.layer1.pool.kernel_size == 3 and model.layer1.pool.stride == 2
    assert model.layer1.conv1.conv.stride == (2, 2) and model.layer1.conv1.conv.bias is None
    first = model.layer3.block1
    assert first.reduce.conv.stride == (2, 2) and first.shortcut.conv.stride == (2, 2)
    assert first.conv3x3.conv.stride == (1, 1)
    for layer, dilation in (("layer2", 1), ("layer3", 1), ("layer4", 2), ("layer5", 4)):
        for block in getattr(model, layer).children():
            assert block.conv3x3.conv.dilation == (dilation, dilation)
            assert block.conv3x3.conv.padding == (dilation, dilation)
            assert block.reduce.conv.stride == ((2, 2) if block is first else (1, 1))
    assert all(m.eps == 1e-5 for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))
    widths = [model.layer2.block2.increase.conv.out_channels, model.layer3.block2.increase.conv.out_channels,
              model.layer4.block2.increase.conv.out_channels, model.layer5.block2.increase.conv.out_channels]
    assert widths == [32, 64, 128, 256]
    assert model.layer5.block2.reduce.conv.out_channels == 64


@pytest.mark.parametrize("rates", [ASPP_L, ASPP_S])
def test_aspp_sums_biased_dilated_branches(rates, small_model):
    model = small_model(aspp_rates=rates)
    x = torch.randn(1, model.aspp.c0.in_channels, 9, 11)
    convs = list(model.aspp.children())
    assert [c.dilation[0] for c in convs] == list(rates) == [c.padding[0] for c in convs]
    with torch.no_grad():
        want = sum(F.conv2d(x, c.weight, c.bias, padding=r, dilation=r) for c, r in zip(convs, rates))
        assert torch.allclose(model.aspp(x), want, atol=1e-6)


def test_msc_fuses_three_scales_by_max(small_model):
    base = small_model()
    msc = MSC(base).eval()
    assert all(k.startswith("base.") for k in msc.state_dict())
    x = torch.randn(2, 3, 57, 70)
    with torch.no_grad():
        full = base(x)
        others = [F.interpolate(base(F.interpolate(x, scale_factor=s, mode="bilinear", align_corners=False)),
                                size=full.shape[2:], mode="bilinear", align_corners=False) for s in (0.5, 0.75)]
        want = torch.stack([full, *others]).max(0).values
        got = msc(x)
    assert got.shape == full.shape and torch.equal(got, want)


@pytest.mark.parametrize("kwargs", [dict(n_classes=0), dict(blocks=(1, 1, 1)), dict(blocks=(1, 0, 1, 1)),
                                    dict(base_width=0), dict(aspp_rates=())])
def test_bad_configuration(kwargs):
    args = dict(n_classes=3, blocks=(1, 1, 1, 1), base_width=8, aspp_rates=ASPP_L) | kwargs
    with pytest.raises(ValueError):
        DeepLabV2(**args)
