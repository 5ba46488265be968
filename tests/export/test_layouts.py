"""isht7 / AdaptSegNet / ADVENT checkpoints, written here from those projects' published model structure (reduced
widths and depth), loaded through our layouts and compared with the structure's own forward."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from export.checkpoint import CheckpointError, load_model
from export.model import CaffeMSC

WIDTH = 4
BLOCKS = (1, 2, 2, 1)
CLASSES = 19


class Bottleneck(nn.Module):
    """torchvision-style names (conv1/bn1, conv2/bn2, conv3/bn3, downsample), stride in the 1×1 conv1."""

    def __init__(self, inplanes: int, planes: int, stride: int = 1, dilation: int = 1, downsample=None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, stride, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, dilation, dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU()
        self.downsample = downsample

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + (self.downsample(x) if self.downsample is not None else x))


class Classifier(nn.Module):
    """``conv2d_list`` of dilated 3×3 convs; AdaptSegNet's returns inside its loop (after branch 1)."""

    def __init__(self, inplanes: int, n_classes: int, early_return: bool) -> None:
        super().__init__()
        self.conv2d_list = nn.ModuleList(nn.Conv2d(inplanes, n_classes, 3, 1, r, r) for r in (6, 12, 18, 24))
        self.early_return = early_return

    def forward(self, x):
        out = self.conv2d_list[0](x)
        for i in range(len(self.conv2d_list) - 1):
            out = out + self.conv2d_list[i + 1](x)
            if self.early_return:
                return out
        return out


class ResNet(nn.Module):
    """The ResNet of isht7's deeplab_resnet.py, AdaptSegNet's deeplab(_multi).py and ADVENT's deeplabv2.py.
    ``heads``: "5" (layer5 on the last block), "6" (layer6 on the last block) or "56" (plus layer5 on layer3)."""

    def __init__(self, heads: str, early_return: bool) -> None:
        super().__init__()
        self.inplanes = WIDTH
        self.conv1 = nn.Conv2d(3, WIDTH, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(WIDTH)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(3, 2, 1, ceil_mode=True)
        self.layer1 = self._make_layer(WIDTH, BLOCKS[0])
        self.layer2 = self._make_layer(2 * WIDTH, BLOCKS[1], stride=2)
        self.layer3 = self._make_layer(4 * WIDTH, BLOCKS[2], dilation=2)
        self.layer4 = self._make_layer(8 * WIDTH, BLOCKS[3], dilation=4)
        self.heads = heads
        if heads == "56":
            self.layer5 = Classifier(16 * WIDTH, CLASSES, early_return)
            self.layer6 = Classifier(32 * WIDTH, CLASSES, early_return)
        else:
            setattr(self, f"layer{heads}", Classifier(32 * WIDTH, CLASSES, early_return))

    def _make_layer(self, planes: int, blocks: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
        downsample = nn.Sequential(nn.Conv2d(self.inplanes, planes * 4, 1, stride, bias=False),
                                   nn.BatchNorm2d(planes * 4))
        layers = [Bottleneck(self.inplanes, planes, stride, dilation, downsample)]
        self.inplanes = planes * 4
        layers += [Bottleneck(self.inplanes, planes, dilation=dilation) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x3 = self.layer3(self.layer2(self.layer1(x)))
        x4 = self.layer4(x3)
        if self.heads == "56":
            return self.layer5(x3), self.layer6(x4)  # (auxiliary, main)
        return getattr(self, f"layer{self.heads}")(x4)


class MSDeeplab(nn.Module):
    """isht7's MS_Deeplab: the network under ``Scale``; its fusion resizes align-corners to int(0.75 H)+1 and
    int(0.5 H)+1 (square inputs), each score map to the 1× size, and takes the max."""

    def __init__(self) -> None:
        super().__init__()
        self.Scale = ResNet("5", early_return=False)

    def forward(self, x):
        size = x.shape[2]
        one = self.Scale(x)

        def branch(s: int):
            small = nn.functional.interpolate(x, size=(s, s), mode="bilinear", align_corners=True)
            return nn.functional.interpolate(self.Scale(small), size=one.shape[2:], mode="bilinear",
                                             align_corners=True)

        return torch.maximum(torch.maximum(one, branch(int(size * 0.75) + 1)), branch(int(size * 0.5) + 1))


def _randomize(model: nn.Module, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.3, 0.3)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    return model.eval()


def _save(model: nn.Module, path, legacy: bool = False):
    torch.save(model.state_dict(), path, _use_new_zipfile_serialization=not legacy)
    return path


X = torch.randn(1, 3, 65, 81)


def test_isht7_checkpoint_and_its_multi_scale_fusion(tmp_path):
    theirs = _randomize(MSDeeplab())
    ours, ckpt = load_model(_save(theirs, tmp_path / "MS_DeepLab_resnet_trained_VOC.pth", legacy=True))
    assert ckpt.layout == "isht7" and ours.aspp_rates == (6, 12, 18, 24)
    x = torch.randn(1, 3, 81, 81)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs.Scale(x), rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(CaffeMSC(ours)(x), theirs(x), rtol=1e-4, atol=1e-4)


def test_adaptsegnet_multi_sums_two_branches_and_takes_layer6(tmp_path):
    theirs = _randomize(ResNet("56", early_return=True))
    path = _save(theirs, tmp_path / "GTA2Cityscapes_multi.pth")
    with pytest.raises(CheckpointError, match=r"pass --layout adaptsegnet \(only ASPP branches 0 and 1 count.*"
                                              r"--layout advent"):
        load_model(path)
    ours, ckpt = load_model(path, layout="adaptsegnet")
    assert ours.aspp_rates == (6, 12)
    assert any("layer6" in n for n in ckpt.notes) and any("branches 2, 3 ignored" in n for n in ckpt.notes)
    with torch.no_grad():
        torch.testing.assert_close(ours(X), theirs(X)[1], rtol=1e-4, atol=1e-4)
        other, _ = load_model(path, layout="advent")
        assert not torch.allclose(other(X), theirs(X)[1], atol=1e-3)


def test_adaptsegnet_single_head(tmp_path):
    theirs = _randomize(ResNet("5", early_return=True))
    ours, _ = load_model(_save(theirs, tmp_path / "a.pth"), layout="adaptsegnet")
    with torch.no_grad():
        torch.testing.assert_close(ours(X), theirs(X), rtol=1e-4, atol=1e-4)


def test_advent_multi_level_and_single_level(tmp_path):
    multi = _randomize(ResNet("56", early_return=False))
    ours, _ = load_model(_save(multi, tmp_path / "m.pth"), layout="advent")
    single = _randomize(ResNet("6", early_return=False), seed=1)
    auto, ckpt = load_model(_save(single, tmp_path / "s.pth"))  # layer6 alone: only ADVENT has that
    assert ckpt.layout == "advent" and auto.aspp_rates == (6, 12, 18, 24)
    with torch.no_grad():
        torch.testing.assert_close(ours(X), multi(X)[1], rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(auto(X), single(X), rtol=1e-4, atol=1e-4)


def test_layout_that_does_not_fit_the_keys(tmp_path):
    path = _save(_randomize(ResNet("5", early_return=False)), tmp_path / "a.pth")
    with pytest.raises(CheckpointError, match=r"--layout isht7 expects keys under 'Scale\.' \(first keys: conv1"):
        load_model(path, layout="isht7")
    with pytest.raises(CheckpointError, match=r"--layout caffe is for \.caffemodel files"):
        load_model(path, layout="caffe")


def test_cityscapes_classes_by_default(tmp_path):
    from export.onnx_export import export_onnx

    path = _save(_randomize(ResNet("6", early_return=False)), tmp_path / "advent.pth")
    lines = []
    meta = export_onnx(path, tmp_path / "m.onnx", height=33, width=33, log=lines.append).meta
    assert lines[0] == ("DeepLab v2 ResNet (blocks 1-2-2-1, width 4), ASPP-L, 19 classes (Cityscapes), ADVENT "
                        "layout, single scale")
    assert meta.class_names[:3] == ("road", "sidewalk", "building") and meta.extra["classes"] == "cityscapes"
    assert meta.extra["palette"][0] == [128, 64, 128]
