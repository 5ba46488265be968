"""runtime.triton_serving: what the repository's Python models compute, checked in process (no server)."""
from __future__ import annotations

import numpy as np
import pytest

from runtime.backends.triton import tensor_dtype
from runtime.metadata import ModelMeta
from runtime.preprocess import preprocess
from runtime.segmenter import Segmenter
from runtime.triton_serving import (
    PostProcessor, PostSettings, infer_grouped, model_meta, model_parameters, parse_pad_to, preprocess_batch,
    to_triton)

META = ModelMeta(class_names=("a", "b", "c"))


def config_json(**parameters: str) -> str:
    import json

    return json.dumps({"name": "m", "parameters": {k: {"string_value": v} for k, v in parameters.items()}})


def test_parameters_and_meta():
    params = model_parameters(config_json(deeplab_meta=META.to_json(), crf="false"))
    assert params["crf"] == "false" and model_meta(params) == META
    with pytest.raises(ValueError, match="regenerate the repository"):
        model_meta({})


def test_post_settings():
    s = PostSettings.from_parameters({"crf": "false", "crf_preset": "", "crf_iterations": "4", "pad_to": "64x48"})
    assert s == PostSettings(crf=False, crf_preset="default", crf_iterations=4, pad_to=(64, 48))
    assert PostSettings.from_parameters({}) == PostSettings()
    with pytest.raises(ValueError, match="true or false"):
        PostSettings.from_parameters({"crf": "yes"})
    with pytest.raises(ValueError, match="HxW"):
        parse_pad_to("64")


def test_preprocess_batch_is_the_runtime_preprocess():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (2, 21, 30, 3), dtype=np.uint8)
    batch = preprocess_batch(images, META)
    assert batch.shape == (2, 3, 24, 32)
    for image, x in zip(images, batch):
        np.testing.assert_array_equal(x, preprocess(image, META)[0][0])
    assert preprocess_batch(images, META, pad_to=(40, 40)).shape == (2, 3, 40, 40)
    with pytest.raises(ValueError, match="N×H×W×3"):
        preprocess_batch(images[..., :2], META)


def test_infer_grouped_runs_one_batch_per_shape_in_order():
    calls = []

    def infer(x: np.ndarray) -> np.ndarray:
        calls.append(x.shape)
        return x[:, :1] * 2

    a, b, c = np.ones((1, 3, 8, 8)), np.full((2, 3, 16, 8), 2.0), np.full((1, 3, 8, 8), 3.0)
    out = infer_grouped(infer, [a, b, c])
    assert sorted(calls) == [(2, 3, 8, 8), (2, 3, 16, 8)]
    for got, x in zip(out, (a, b, c)):
        np.testing.assert_array_equal(got, x[:, :1] * 2)


@pytest.mark.parametrize("want_probs", [False, True])
def test_postprocessor_equals_segmenter_without_crf(tiny_onnx, want_probs):
    seg = Segmenter(str(tiny_onnx), backend="onnxruntime", crf=None)
    post = PostProcessor(seg.meta, PostSettings(crf=False))
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (2, 37, 45, 3), dtype=np.uint8)
    logits = np.concatenate([seg.infer(image)[0][None] for image in images])
    labels, probs = post(logits, images, want_probs)
    assert labels.shape == (2, 37, 45) and (probs is not None) == want_probs
    for i, image in enumerate(images):
        want_labels, want_probs_i = seg.segment(image)
        np.testing.assert_array_equal(labels[i], want_labels)
        if want_probs:
            np.testing.assert_array_equal(probs[i], want_probs_i)


def test_postprocessor_rejects_mismatched_inputs(tiny_onnx):
    post = PostProcessor(META, PostSettings(crf=False))
    with pytest.raises(ValueError, match="disagree"):
        post(np.zeros((2, 3, 4, 4), np.float32), np.zeros((1, 32, 32, 3), np.uint8))


def test_to_triton_hands_over_a_c_contiguous_array():
    """What the Python models give ``pb_utils.Tensor``: the numpy-1 constructor, or a DLPack capsule under numpy 2."""

    class Tensor:  # records what the stub's Tensor receives; the real one exists only inside tritonserver
        def __init__(self, name, array):
            self.name, self.array = name, array

        @classmethod
        def from_dlpack(cls, name, capsule):
            holder = type("Holder", (), {"__dlpack__": lambda self, **k: capsule,
                                         "__dlpack_device__": lambda self: (1, 0)})()
            return cls(name, np.from_dlpack(holder))

    x = np.arange(24, dtype=np.float32).reshape(2, 3, 4).transpose(0, 2, 1)
    t = to_triton(Tensor, "LOGITS", x)
    assert t.name == "LOGITS" and t.array.flags["C_CONTIGUOUS"]
    np.testing.assert_array_equal(t.array, x)


def test_tensor_dtype_and_the_preprocessing_cast():
    """deeplab_pre casts to the type its config declares for INPUT (an fp16 network gets fp16)."""
    import json

    config = {"input": [{"name": "IMAGE", "data_type": "TYPE_UINT8"}],
              "output": [{"name": "INPUT", "data_type": "TYPE_FP16"}, {"name": "X", "data_type": "TYPE_BF16"}]}
    assert tensor_dtype(json.dumps(config), "INPUT") == np.float16
    with pytest.raises(ValueError, match="'X' is TYPE_BF16"):
        tensor_dtype(config, "X")
    with pytest.raises(ValueError, match="no tensor 'Y'"):
        tensor_dtype(config, "Y")
    images = np.random.default_rng(0).integers(0, 256, (2, 20, 28, 3), np.uint8)
    fp32 = preprocess_batch(images, META)
    fp16 = preprocess_batch(images, META, dtype=tensor_dtype(config, "INPUT"))
    assert fp32.dtype == np.float32 and fp16.dtype == np.float16
    np.testing.assert_array_equal(fp16, fp32.astype(np.float16))


def test_to_triton_leaves_no_unraisable_capsule_error(monkeypatch):
    """The stub renames the capsule it consumes to a name numpy's destructor does not know; to_triton names it
    "used_dltensor" so that its destructor stays quiet, without touching sys.unraisablehook."""
    import ctypes
    import gc
    import sys

    from runtime import triton_serving

    if not triton_serving.NUMPY_2:
        pytest.skip("numpy 1 hands arrays to the stub without DLPack")
    rename = ctypes.PYFUNCTYPE(ctypes.c_int, ctypes.py_object, ctypes.c_char_p)(("PyCapsule_SetName", ctypes.pythonapi))
    stub_name = b"consumed_by_stub"

    class Tensor:  # takes the tensor and renames the capsule as Triton's stub does
        @classmethod
        def from_dlpack(cls, name, capsule):
            holder = type("Holder", (), {"__dlpack__": lambda self, **k: capsule,
                                         "__dlpack_device__": lambda self: (1, 0)})()
            t = cls()
            t.array = np.from_dlpack(holder).copy()
            rename(capsule, stub_name)
            return t

    gc.collect()  # earlier tests' garbage
    seen = []
    hook = sys.unraisablehook
    monkeypatch.setattr(sys, "unraisablehook", lambda u: seen.append(f"{u.exc_value}"))
    x = np.arange(6, dtype=np.float32)
    t = to_triton(Tensor, "LOGITS", x)
    gc.collect()
    assert sys.unraisablehook is not hook and not [m for m in seen if "PyCapsule" in m]
    np.testing.assert_array_equal(t.array, x)
