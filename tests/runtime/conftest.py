"""Shared fixtures for the runtime tests: a tiny ONNX "segmentation model" built with onnx.helper (no torch), so the
runtime is tested end to end in milliseconds. It is a stride-8 8×8 convolution: 1/8-resolution logits like DeepLab."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from runtime.metadata import ONNX_METADATA_KEY, ModelMeta

# ../shared/reference beside the repository (CI); DEEPLAB_REFERENCE overrides it (e.g. from a git worktree).
REFERENCE = Path(os.environ.get("DEEPLAB_REFERENCE")
                 or Path(__file__).resolve().parents[2].parent / "shared" / "reference")
VIDEOS = REFERENCE / "videos"


def make_tiny_onnx(path: Path, n_classes: int = 4, metadata: str | None = "valid", seed: int = 0,
                   align_corners: bool = False) -> Path:
    """Write a stride-8 conv model. ``metadata``: "valid", None (no deeplab key) or a raw string stored as is."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    weight = (rng.standard_normal((n_classes, 3, 8, 8)) * 0.01).astype(np.float32)
    bias = rng.standard_normal(n_classes).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["image", "w", "b"], ["logits"], kernel_shape=[8, 8], strides=[8, 8])],
        "tiny",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, "H", "W"])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", n_classes, "h", "w"])],
        [numpy_helper.from_array(weight, "w"), numpy_helper.from_array(bias, "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    if metadata == "valid":
        meta = ModelMeta(class_names=tuple(f"class{i}" for i in range(n_classes)), align_corners=align_corners,
                         extra={"crf": {"iterations": 2}})
        helper.set_model_props(model, {ONNX_METADATA_KEY: meta.to_json()})
    elif metadata is not None:
        helper.set_model_props(model, {ONNX_METADATA_KEY: metadata})
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="session")
def make_onnx():
    """The :func:`make_tiny_onnx` factory (test modules cannot import conftest under --import-mode=importlib)."""
    return make_tiny_onnx


@pytest.fixture(scope="session")
def tiny_onnx(tmp_path_factory) -> Path:
    return make_tiny_onnx(tmp_path_factory.mktemp("models") / "tiny.onnx")


@pytest.fixture(scope="session")
def videos() -> Path:
    if not VIDEOS.is_dir():
        pytest.skip(f"reference videos not found at {VIDEOS}")
    return VIDEOS
