from __future__ import annotations

import numpy as np
import pytest

from runtime import Segmenter
from runtime.backends import Backend, BackendError, open_backend, select_backend
from runtime.backends.ort import OnnxRuntimeBackend, choose_providers
from runtime.metadata import ModelMeta


@pytest.mark.parametrize(
    "path, requested, gpu, trt, expected",
    [
        ("m.onnx", "auto", False, False, "onnxruntime"),
        ("m.onnx", "auto", True, True, "onnxruntime"),
        ("m.onnx", "ort", False, False, "onnxruntime"),
        ("m.plan", "auto", True, True, "tensorrt"),
        ("m.engine", "tensorrt", True, True, "tensorrt"),
        ("anything", "triton", False, False, "triton"),
    ],
)
def test_select_backend(path, requested, gpu, trt, expected):
    name, reason = select_backend(path, requested, has_gpu=gpu, has_tensorrt=trt)
    assert name == expected and reason


@pytest.mark.parametrize(
    "path, requested, gpu, trt, match",
    [
        ("m.plan", "auto", False, True, "needs a CUDA GPU"),
        ("m.plan", "auto", True, False, "tensorrt Python package"),
        ("m.plan", "onnxruntime", True, True, "ONNX Runtime needs the .onnx"),
        ("m.onnx", "tensorrt", True, True, "build an engine first"),
        ("m.bin", "auto", False, False, "unknown model type"),
        ("m.pt", "auto", False, False, r"m.pt is a checkpoint; export it first: python -m export onnx m.pt"),
        ("train_iter_20000.caffemodel", "auto", False, False, r"is a checkpoint; export it first"),
        ("m.onnx", "openvino", False, False, "unknown backend"),
    ],
)
def test_select_backend_errors(path, requested, gpu, trt, match):
    with pytest.raises(BackendError, match=match):
        select_backend(path, requested, has_gpu=gpu, has_tensorrt=trt)


def test_choose_providers():
    cpu_only = ["CPUExecutionProvider"]
    gpu = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    assert choose_providers(cpu_only) == cpu_only
    assert choose_providers(gpu) == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert choose_providers(gpu, "tensorrt") == gpu
    with pytest.raises(BackendError, match="onnxruntime-gpu"):
        choose_providers(cpu_only, "cuda")


def test_onnxruntime_backend_runs(tiny_onnx):
    backend = open_backend(tiny_onnx)
    assert backend.name == "onnxruntime" and "auto" in backend.reason
    assert backend.meta.n_classes == 4 and backend.meta.extra["crf"] == {"iterations": 2}
    logits = backend.infer(np.zeros((2, 3, 48, 64), np.float32))
    assert logits.shape == (2, 4, 6, 8) and logits.dtype == np.float32
    with pytest.raises(BackendError, match="N×3×H×W"):
        backend.infer(np.zeros((1, 4, 8, 8), np.float32))
    backend.close()


def test_model_without_metadata_is_a_clear_error(tmp_path, make_onnx):
    path = make_onnx(tmp_path / "bare.onnx", metadata=None)
    with pytest.raises(BackendError, match="has no 'deeplab' metadata.*meta=ModelMeta"):
        open_backend(path)
    # the documented explicit override
    backend = open_backend(path, meta=ModelMeta(class_names=("a", "b", "c", "d")))
    assert backend.meta.n_classes == 4


@pytest.mark.parametrize("text, match", [("{not json", "not valid JSON"), ('{"class_names": []}', "no classes"),
                                         ('{"class_names": ["a"], "bogus": 1}', "unknown fields")])
def test_model_with_corrupt_metadata(tmp_path, make_onnx, text, match):
    path = make_onnx(tmp_path / "corrupt.onnx", metadata=text)
    with pytest.raises(BackendError, match=f"corrupt 'deeplab' metadata.*{match}"):
        open_backend(path)


def test_metadata_class_count_must_match_graph(tmp_path, make_onnx):
    path = make_onnx(tmp_path / "m.onnx", metadata=None)
    with pytest.raises(BackendError, match="outputs 4 classes, its metadata lists 2"):
        open_backend(path, meta=ModelMeta(class_names=("a", "b")))


@pytest.mark.parametrize("content, match", [(None, "not found"), (b"", "empty"), (b"\x00garbage" * 50, "cannot load")])
def test_bad_model_files(tmp_path, content, match):
    path = tmp_path / "bad.onnx"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(BackendError, match=match):
        open_backend(path)


def test_truncated_model(tmp_path, tiny_onnx):
    data = tiny_onnx.read_bytes()
    path = tmp_path / "trunc.onnx"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(BackendError, match="cannot load"):
        open_backend(path)


def test_fp16_model(tmp_path, tiny_onnx):
    """An FP16 model (converted by onnxconverter/onnxruntime tools, fp32 or fp16 I/O) runs and returns float32."""
    import onnx
    from onnx import numpy_helper
    model = onnx.load(str(tiny_onnx))
    for init in model.graph.initializer:
        init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float16), init.name))
    for vi in list(model.graph.input) + list(model.graph.output):
        vi.type.tensor_type.elem_type = onnx.TensorProto.FLOAT16
    path = tmp_path / "fp16.onnx"
    onnx.save(model, str(path))
    backend = open_backend(path)
    x = np.random.default_rng(0).standard_normal((1, 3, 16, 24)).astype(np.float32)
    out = backend.infer(x)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, open_backend(tiny_onnx).infer(x), atol=2e-2)


class _FixedSize(OnnxRuntimeBackend):
    """The tiny model served as if built for one input size, like a fixed-shape engine."""

    def input_size(self, height, width):
        return (64, 72)


def test_backend_contract_defaults(tiny_onnx):
    backend = OnnxRuntimeBackend(tiny_onnx)
    assert isinstance(backend, Backend) and not backend.device_output
    assert backend.input_size(40, 56) is None and backend.reason == "given as an open backend"
    with pytest.raises(BackendError, match="onnxruntime backend returns its logits in host memory only"):
        backend.infer_device(np.zeros((1, 3, 8, 8), np.float32))
    with pytest.raises(TypeError, match="abstract"):
        type("NoInfer", (Backend,), {"name": "x"})()


def test_segmenter_pads_to_the_backends_input_size(tiny_onnx):
    image = np.full((40, 56, 3), 90, np.uint8)
    x, padding = Segmenter(_FixedSize(tiny_onnx), crf=None).preprocess(image)
    assert x.shape == (1, 3, 64, 72) and (padding.padded_height, padding.padded_width) == (64, 72)
    x, _ = Segmenter(OnnxRuntimeBackend(tiny_onnx), crf=None).preprocess(image)
    assert x.shape == (1, 3, 40, 56)  # already multiples of the stride


def test_an_engine_without_tensorrt_names_its_onnx_model(tmp_path, tiny_onnx):
    from runtime.engine_info import EngineInfo, write_sidecar

    engine = tmp_path / "m.plan"
    engine.write_bytes(b"engine")
    with pytest.raises(BackendError, match=r"none here: run its ONNX model instead: --model MODEL.onnx \(export one "
                                           r"from the checkpoint: python -m export onnx CHECKPOINT -o model.onnx\)"):
        select_backend(engine, "auto", has_gpu=False, has_tensorrt=False)
    built = EngineInfo(tensorrt_version="10.3.0", gpu_name="Orin", compute_capability="8.7", precision="fp16",
                       profile={"min": [1, 3, 64, 64], "opt": [1, 3, 64, 64], "max": [1, 3, 64, 64]},
                       onnx_path=str(tiny_onnx))
    write_sidecar(engine, Segmenter(tiny_onnx, crf=None).meta, built)
    for requested in ("auto", "onnxruntime"):
        with pytest.raises(BackendError, match=f"run the ONNX model it was built from instead: --model {tiny_onnx}$"):
            select_backend(engine, requested, has_gpu=False, has_tensorrt=False)
    write_sidecar(engine, Segmenter(tiny_onnx, crf=None).meta, EngineInfo(**{**built.__dict__, "onnx_path": "gone.onnx"}))
    with pytest.raises(BackendError, match=r"--model gone.onnx \(not found here: copy it, or export the checkpoint"):
        select_backend(engine, "auto", has_gpu=False, has_tensorrt=False)
