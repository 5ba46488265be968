"""Shared fixtures for export tests: a small DeepLab v2 with non-trivial BN statistics, saved and exported."""
from __future__ import annotations

from pathlib import Path

import pytest

SMALL_BLOCKS = (1, 1, 1, 1)
SMALL_WIDTH = 8
SMALL_CLASSES = ("background", "road", "car", "person")


def make_small_model(n_classes: int = len(SMALL_CLASSES), blocks=SMALL_BLOCKS, width: int = SMALL_WIDTH,
                     aspp_rates=None, seed: int = 0):
    """A randomly initialized small DeepLabV2 in eval mode, with randomized BN statistics (so BN is not identity)."""
    import torch

    from export.model import ASPP_L, DeepLabV2

    torch.manual_seed(seed)
    model = DeepLabV2(n_classes, blocks, width, aspp_rates or ASPP_L)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    return model.eval()


@pytest.fixture(scope="session")
def small_checkpoint(tmp_path_factory) -> Path:
    """Our own checkpoint format with class names: {"model", "class_names", "meta"}."""
    from export.checkpoint import save_checkpoint

    path = tmp_path_factory.mktemp("ckpt") / "small.pt"
    save_checkpoint(path, make_small_model(), SMALL_CLASSES, {"dataset": "unit-test"})
    return path


@pytest.fixture(scope="session")
def small_onnx(small_checkpoint, tmp_path_factory) -> Path:
    """The small checkpoint exported to single-scale ONNX (opset 17, parity-checked)."""
    from export.onnx_export import export_onnx

    path = tmp_path_factory.mktemp("onnx") / "small.onnx"
    export_onnx(small_checkpoint, path, height=65, width=65)
    return path


@pytest.fixture(scope="session")
def small_model():
    """Factory: ``small_model(n_classes=4, blocks=(1,1,1,1), width=8, aspp_rates=None, seed=0)``."""
    return make_small_model
