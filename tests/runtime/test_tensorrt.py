"""TensorRT backend: the pure shape decisions run everywhere; loading an engine needs TensorRT and a GPU (gpu mark)."""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from runtime.backends.tensorrt import check_batch, input_size, output_capacity
from runtime.preprocess import ImageError

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


def test_output_capacity():
    assert output_capacity(FIXED["max"], 21, 8) == (1, 21, 41, 41)
    assert output_capacity(DYNAMIC["max"], 5, 8) == (4, 5, 128, 128)


@pytest.mark.gpu
def test_engine_matches_onnxruntime(tmp_path, make_onnx):
    """Build an engine from the tiny ONNX with TensorRT's builder, then compare with ONNX Runtime."""
    if importlib.util.find_spec("tensorrt") is None:
        pytest.skip("TensorRT is not installed")
    from runtime.cuda_util import gpu_available
    if not gpu_available():
        pytest.skip("no CUDA GPU")
    import tensorrt as trt

    from runtime.backends import open_backend
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
