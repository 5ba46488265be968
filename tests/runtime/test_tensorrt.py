"""TensorRT backend: the pure shape decisions, then the backend itself through the TensorRT + cuda.bindings stand-ins
of tests/support (every API release; see docs/standin.md), and on a real GPU where there is one (gpu mark)."""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest

import onnx
import trt_standin
from onnx import TensorProto, helper, numpy_helper

from export.engine import BuildOptions, build_engine
from runtime import Segmenter, upsample
from runtime.backends import BackendError, open_backend, resolve_model
from runtime.backends.tensorrt import _Pinned, check_batch, input_size
from runtime.metadata import ONNX_METADATA_KEY, ModelMeta
from runtime.preprocess import ImageError
from runtime.upsample_cuda import CudaUpsampler

DYNAMIC = {"min": [1, 3, 64, 64], "opt": [1, 3, 512, 512], "max": [4, 3, 1024, 1024]}
FIXED = {"min": [1, 3, 321, 321], "opt": [1, 3, 321, 321], "max": [1, 3, 321, 321]}


def test_input_size():
    assert input_size(DYNAMIC, 500, 375, 8) == (504, 376)
    assert input_size(DYNAMIC, 20, 700, 8) == (64, 704)  # padded up to the profile minimum
    assert input_size(FIXED, 300, 321, 8) == (321, 321)  # a fixed profile: always its size
    assert input_size(DYNAMIC, 1020, 1024, 8) == (1024, 1024)
    with pytest.raises(ImageError, match="above the engine profile's maximum input 321×321.*--max-shape"):
        input_size(FIXED, 330, 200, 8)


def test_check_batch():
    assert check_batch((1, 3, 512, 512), DYNAMIC) is None
    assert "outside the engine profile 1x3x64x64 .. 4x3x1024x1024" in check_batch((5, 3, 512, 512), DYNAMIC)
    assert check_batch((1, 3, 512), DYNAMIC) is not None


@pytest.mark.gpu
def test_engine_matches_onnxruntime(tmp_path, make_onnx):
    """Build an engine from the tiny ONNX with TensorRT's builder, then compare with ONNX Runtime."""
    if importlib.util.find_spec("tensorrt") is None:
        pytest.skip("TensorRT is not installed")
    from runtime.cuda_util import gpu_available
    if not gpu_available():
        pytest.skip("no CUDA GPU")
    import tensorrt as trt

    from runtime.engine_info import EngineInfo, current_platform, write_sidecar

    onnx_path = make_onnx(tmp_path / "tiny.onnx")
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    major = int(trt.__version__.split(".")[0])
    flags = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH) if major < 10 else 0
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    assert parser.parse(onnx_path.read_bytes())
    config = builder.create_builder_config()
    profile = builder.create_optimization_profile()
    profile.set_shape("image", DYNAMIC["min"], DYNAMIC["opt"], DYNAMIC["max"])
    config.add_optimization_profile(profile)
    plan = builder.build_serialized_network(network, config)
    engine_path = tmp_path / "tiny.plan"
    engine_path.write_bytes(bytes(plan))
    platform = current_platform()
    ort = open_backend(onnx_path, "onnxruntime")
    write_sidecar(engine_path, ort.meta, EngineInfo(platform.tensorrt_version, platform.gpu_name,
                                                    platform.compute_capability, "fp32", DYNAMIC))
    for cuda_graph in (False, True):
        engine = open_backend(engine_path, "tensorrt", cuda_graph=cuda_graph)
        for shape in ((1, 3, 64, 96), (2, 3, 128, 64), (1, 3, 64, 96)):
            x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
            np.testing.assert_allclose(engine.infer(x), ort.infer(x), rtol=1e-3, atol=1e-3)
        engine.close()


# --------------------------------------------------------------------------------------------------------------------
# Through the stand-ins: the demo model is DeepLab's Caffe layout (logits H/8 + 1), which a formula-sized buffer misses.

RELEASES = ["8.5.3", "8.6.1", "10.3.0", "10.16", "11.1"]
SMALL = {"min": (1, 3, 64, 64), "opt": (1, 3, 96, 128), "max": (1, 3, 128, 160)}


def _engine(tmp_path, model="demo", name="m.plan", **profile):

    shapes = {**SMALL, **profile}
    build_engine(resolve_model(model), tmp_path / name,
                 BuildOptions(min_shape=shapes["min"], opt_shape=shapes["opt"], max_shape=shapes["max"]))
    return tmp_path / name


def _reference(model="demo"):
    return open_backend(model, "onnxruntime", threads=1)


def _batch(h, w, seed=0):
    return np.random.default_rng(seed).standard_normal((1, 3, h, w)).astype(np.float32)


@pytest.mark.parametrize("release", RELEASES)
def test_engine_equals_onnxruntime_across_the_profile(trt_standin_for, tmp_path, release):
    """Finding 1: buffers sized from the engine's own output shape at the profile maximum."""
    trt_standin_for(release)

    engine, ref = open_backend(_engine(tmp_path), "tensorrt"), _reference()
    assert engine.profile == {k: list(v) for k, v in SMALL.items()}
    for h, w in ((128, 160), (64, 64), (96, 128), (128, 160), (120, 152)):
        x = _batch(h, w)
        got = engine.infer(x)
        assert got.shape == (1, 8, h // 8 + 1, w // 8 + 1)
        np.testing.assert_allclose(got, ref.infer(x), rtol=1e-4, atol=1e-4)
    with pytest.raises(BackendError, match="outside the engine profile"):
        engine.infer(_batch(136, 160))
    engine.close()


def test_buffer_capacity_is_a_backend_error(trt_standin_for, tmp_path):
    trt_standin_for("10.16")

    engine = open_backend(_engine(tmp_path), "tensorrt")
    engine._output.free()
    engine._output = _Pinned(engine._rt, 64, np.float32)  # smaller than any output of the profile
    engine.context.set_tensor_address("logits", engine._output.device)
    with pytest.raises(BackendError, match="exceeds the buffer"):
        engine.infer(_batch(64, 64))


def _bf16_onnx(path):


    w = numpy_helper.from_array(np.full((2, 3, 8, 8), 0.01, np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("Cast", ["image"], ["x"], to=TensorProto.FLOAT),
         helper.make_node("Conv", ["x", "w"], ["logits"], kernel_shape=[8, 8], strides=[8, 8])], "bf16",
        [helper.make_tensor_value_info("image", TensorProto.BFLOAT16, [1, 3, "H", "W"])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 2, "h", "w"])], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    helper.set_model_props(model, {ONNX_METADATA_KEY: ModelMeta(class_names=("a", "b")).to_json()})
    onnx.save(model, str(path))
    return path


def test_bf16_io_is_a_backend_error(trt_standin_for, tmp_path):
    trt_standin_for("10.16")

    plan = _engine(tmp_path, model=_bf16_onnx(tmp_path / "bf16.onnx"))
    with pytest.raises(BackendError, match="'image' tensor is BF16.*FP32 or FP16 I/O"):
        open_backend(plan, "tensorrt")


@pytest.mark.parametrize("release", ["8.6.1", "11.1"])
def test_cuda_graph_replays_on_a_non_blocking_stream(trt_standin_for, tmp_path, release):
    trt_standin_for(release)
    from cuda.bindings import runtime as rt


    engine, ref = open_backend(_engine(tmp_path), "tensorrt", cuda_graph=True), _reference()
    assert rt.cudaStreamGetFlags(engine.stream)[1] == rt.cudaStreamNonBlocking
    for h, w, seed in ((64, 64, 0), (64, 64, 1), (128, 160, 2), (128, 160, 3), (64, 64, 4)):
        x = _batch(h, w, seed)
        np.testing.assert_allclose(engine.infer(x), ref.infer(x), rtol=1e-4, atol=1e-4)
    engine.close()


def test_failed_capture_is_a_backend_error(trt_standin_for, tmp_path):
    trt_standin_for("10.16")


    engine = open_backend(_engine(tmp_path), "tensorrt", cuda_graph=True)
    trt_standin.inject_fault("execute_async_v3", "capturing")
    try:
        with pytest.raises(BackendError, match="while capturing a CUDA graph"):
            engine.infer(_batch(64, 64))
    finally:
        trt_standin.inject_fault("execute_async_v3", None)


def test_second_gpu_sets_its_device_on_every_call(trt_standin_for, tmp_path):
    """Finding 6: another library (or backend) switching the thread's device must not break the engine."""
    trt_standin_for("10.16", devices=2)
    from cuda.bindings import runtime as rt


    engine, ref = open_backend(_engine(tmp_path), "tensorrt", device=1), _reference()
    x = _batch(64, 64)
    rt.cudaSetDevice(0)
    np.testing.assert_allclose(engine.infer(x), ref.infer(x), rtol=1e-4, atol=1e-4)
    engine.close()


def test_upsampler_leaves_the_thread_on_its_device(trt_standin_for):
    trt_standin_for("10.16", devices=2)
    from cuda.bindings import runtime as rt


    rt.cudaSetDevice(0)
    up = CudaUpsampler(1)
    assert rt.cudaGetDevice()[1] == 0
    x = _batch(5, 6)[:, :2]
    np.testing.assert_allclose(up.run("bilinear_softmax", x, (40, 48), (37, 45), False),
                               upsample.bilinear_softmax(x, (40, 48), False, crop=(37, 45)), atol=1e-5)
    assert rt.cudaGetDevice()[1] == 0
    up.close()


@pytest.mark.parametrize("device", [0, 1])
def test_logits_stay_on_the_gpu_for_cuda_upsampling(trt_standin_for, tmp_path, device):
    """Finding 9: TensorRT's logits go to the CUDA upsampling on the same GPU without a host round trip."""
    trt_standin_for("10.16", devices=2)


    plan = _engine(tmp_path)
    image = np.random.default_rng(3).integers(0, 255, (100, 150, 3), np.uint8)
    seg = Segmenter(plan, crf=None, upsample_device="cuda", device=device)
    cpu = Segmenter("demo", backend="onnxruntime", crf=None, upsample_device="cpu")
    assert seg.device_logits
    before = dict(trt_standin.cuda.STATE.calls)
    labels, probs = seg.segment(image)
    calls = trt_standin.cuda.STATE.calls
    assert calls["cuMemcpyHtoDAsync"] == before.get("cuMemcpyHtoDAsync", 0)  # nothing uploaded for upsampling
    assert calls["cuLaunchKernel"] > before.get("cuLaunchKernel", 0)
    ref_labels, ref_probs = cpu.segment(image)
    np.testing.assert_allclose(probs, ref_probs, atol=1e-4)
    assert (labels == ref_labels).mean() > 0.999
    np.testing.assert_array_equal(seg.segment(image, return_probs=False)[0], labels)


def test_kernels_that_cannot_run_fall_back_to_the_cpu(trt_standin_for, tmp_path, caplog):
    trt_standin_for("10.16")


    trt_standin.cuda.STATE.devices[0].capability = (3, 0)  # older than any architecture this NVRTC targets
    plan = _engine(tmp_path)
    with caplog.at_level("WARNING"):
        seg = Segmenter(plan, crf=None)
    assert seg.upsample_device == "cpu" and not seg.device_logits
    assert "CUDA upsampling unavailable" in caplog.text and "sm_30" in caplog.text
    image = np.zeros((64, 64, 3), np.uint8)
    assert seg.segment(image)[0].shape == (64, 64)
    with pytest.raises(Exception, match="sm_30"):
        Segmenter(plan, crf=None, upsample_device="cuda")
