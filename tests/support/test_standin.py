"""The stand-ins themselves: they expose no more than each release (and cuda-python) has, and they fail where a GPU
and TensorRT would, so a broken code path cannot pass through them."""
from __future__ import annotations

import inspect

import numpy as np
import pytest
import trt_standin
from trt_standin import cuda

from runtime.backends import resolve_model

pytestmark = pytest.mark.skipif(not trt_standin.available_versions(),
                                reason=f"TensorRT binding sources not found at {trt_standin.api_root()}")


def test_cuda_standin_calls_exist_in_cuda_python_with_the_same_parameters():
    from cuda.bindings import driver as real_driver
    from cuda.bindings import runtime as real_runtime

    for fake, real in ((cuda.make_runtime(), real_runtime), (cuda.make_driver(), real_driver)):
        names = [n for n in vars(fake) if n.startswith("cu") and callable(getattr(fake, n))
                 and not isinstance(getattr(fake, n), type)]
        assert len(names) > 15
        for name in names:
            assert hasattr(real, name), name
            want = len(inspect.signature(getattr(real, name)).parameters)
            got = [p for p in inspect.signature(getattr(fake, name)).parameters.values()
                   if p.default is inspect.Parameter.empty]
            assert len(got) == want, name
    for enum_name in ("cudaError_t", "cudaMemcpyKind", "cudaStreamCaptureMode", "cudaDeviceAttr"):
        real_members = set(getattr(real_runtime, enum_name).__members__)
        assert set(getattr(cuda, enum_name).__members__) <= real_members, enum_name
        for name, member in getattr(cuda, enum_name).__members__.items():
            assert int(getattr(getattr(real_runtime, enum_name), name)) == int(member), name
    assert real_runtime.cudaStreamNonBlocking == cuda.make_runtime().cudaStreamNonBlocking


def test_device_memory_is_bounds_checked_and_streams_run_in_order():
    cuda.reset()
    rt = cuda.make_runtime()
    ok = rt.cudaError_t.cudaSuccess
    err, d = rt.cudaMalloc(16)
    host = np.arange(8, dtype=np.float32)
    back = np.zeros(8, np.float32)
    h2d, d2h = rt.cudaMemcpyKind.cudaMemcpyHostToDevice, rt.cudaMemcpyKind.cudaMemcpyDeviceToHost
    assert rt.cudaMemcpy(d, host.ctypes.data, 32, h2d)[0] == rt.cudaError_t.cudaErrorIllegalAddress  # 32 > 16
    assert rt.cudaMemcpy(d, host.ctypes.data, 16, d2h)[0] == rt.cudaError_t.cudaErrorInvalidMemcpyDirection
    _, stream = rt.cudaStreamCreateWithFlags(rt.cudaStreamNonBlocking)
    assert rt.cudaMemcpyAsync(d, host.ctypes.data, 16, h2d, stream)[0] == ok
    assert rt.cudaMemcpyAsync(back.ctypes.data, d, 16, d2h, stream)[0] == ok
    assert not back.any()  # queued, not yet run
    assert rt.cudaStreamSynchronize(stream)[0] == ok
    np.testing.assert_array_equal(back[:4], host[:4])
    assert d >= cuda.DEVICE_BASE and rt.cudaFree(d)[0] == ok and rt.cudaFree(d)[0] != ok


def test_graph_capture_records_and_replays():
    cuda.reset()
    rt = cuda.make_runtime()
    _, d = rt.cudaMalloc(4)
    src = np.array([7], np.int32)
    out = np.zeros(1, np.int32)
    _, stream = rt.cudaStreamCreateWithFlags(rt.cudaStreamNonBlocking)
    mode = rt.cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal
    assert rt.cudaStreamBeginCapture(0, mode)[0] == rt.cudaError_t.cudaErrorStreamCaptureUnsupported  # legacy stream
    rt.cudaStreamBeginCapture(stream, mode)
    rt.cudaMemcpyAsync(d, src.ctypes.data, 4, rt.cudaMemcpyKind.cudaMemcpyHostToDevice, stream)
    rt.cudaMemcpyAsync(out.ctypes.data, d, 4, rt.cudaMemcpyKind.cudaMemcpyDeviceToHost, stream)
    assert rt.cudaStreamSynchronize(stream)[0] == rt.cudaError_t.cudaErrorStreamCaptureUnsupported
    assert rt.cudaStreamEndCapture(stream)[0] == rt.cudaError_t.cudaErrorStreamCaptureInvalidated
    rt.cudaStreamBeginCapture(stream, mode)
    rt.cudaMemcpyAsync(d, src.ctypes.data, 4, rt.cudaMemcpyKind.cudaMemcpyHostToDevice, stream)
    rt.cudaMemcpyAsync(out.ctypes.data, d, 4, rt.cudaMemcpyKind.cudaMemcpyDeviceToHost, stream)
    _, graph = rt.cudaStreamEndCapture(stream)
    assert out[0] == 0  # captured, not run
    _, exe = rt.cudaGraphInstantiate(graph, 0)
    for value in (7, 9):
        src[0] = value
        rt.cudaGraphLaunch(exe, stream)
        rt.cudaStreamSynchronize(stream)
        assert out[0] == value


@pytest.mark.parametrize("release, absent", [
    ("11.1", ["BuilderFlag.FP16", "IInt8EntropyCalibrator2", "NetworkDefinitionCreationFlag.EXPLICIT_BATCH"]),
    ("10.16", ["IExecutionContext.execute_async_v2", "IBuilderConfig.max_workspace_size"]),
    ("8.5.3", ["IProgressMonitor", "BuilderFlag.VERSION_COMPATIBLE", "Runtime.engine_host_code_allowed"]),
])
def test_names_a_release_lacks_raise_attribute_error(release, absent):
    trt = trt_standin.make_module(release)
    for dotted in absent:
        head, _, member = dotted.partition(".")
        if not member:
            assert not hasattr(trt, head), dotted
        else:
            assert not hasattr(getattr(trt, head), member), dotted
    config = trt.Builder(trt.Logger()).create_builder_config()
    with pytest.raises(AttributeError):
        config.no_such_setting = 1


def test_a_plan_runs_only_under_the_release_that_built_it(tmp_path, capsys):
    cuda.reset()
    old, new = trt_standin.make_module("8.5.3"), trt_standin.make_module("11.1")
    logger = old.Logger()
    builder = old.Builder(logger)
    network = builder.create_network(1 << int(old.NetworkDefinitionCreationFlag.EXPLICIT_BATCH))
    parser = old.OnnxParser(network, logger)
    assert parser.parse_from_file(str(resolve_model("demo")))
    assert tuple(network.get_input(0).shape) == (-1, 3, -1, -1)
    config = builder.create_builder_config()
    assert builder.build_serialized_network(network, config) is None  # dynamic input, no profile
    profile = builder.create_optimization_profile()
    profile.set_shape("image", (1, 3, 64, 64), (1, 3, 64, 64), (1, 3, 128, 128))
    config.add_optimization_profile(profile)
    plan = builder.build_serialized_network(network, config)
    assert old.Runtime(logger).deserialize_cuda_engine(plan) is not None
    assert new.Runtime(new.Logger()).deserialize_cuda_engine(plan) is None
    assert "Version tag does not match" in capsys.readouterr().err
    implicit = old.Builder(logger).create_network(0)
    assert not old.OnnxParser(implicit, logger).parse_from_file(str(resolve_model("demo")))


def test_engine_output_past_its_buffer_is_an_illegal_address():
    cuda.reset()
    trt = trt_standin.make_module("10.16")
    rt = cuda.make_runtime()
    logger = trt.Logger()
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    trt.OnnxParser(network, logger).parse_from_file(str(resolve_model("demo")))
    config = builder.create_builder_config()
    profile = builder.create_optimization_profile()
    profile.set_shape("image", (1, 3, 64, 64), (1, 3, 64, 64), (1, 3, 64, 64))
    config.add_optimization_profile(profile)
    engine = trt.Runtime(logger).deserialize_cuda_engine(builder.build_serialized_network(network, config))
    context = engine.create_execution_context()
    assert tuple(context.get_tensor_shape("logits")) == (-1, 8, -1, -1)  # until the input shape is set
    assert context.set_input_shape("image", (1, 3, 64, 64))
    assert tuple(context.get_tensor_shape("logits")) == (1, 8, 9, 9)  # what the network computes: 64/8 + 1
    _, d_in = rt.cudaMalloc(3 * 64 * 64 * 4)
    _, d_out = rt.cudaMalloc(8 * 8 * 8 * 4)  # sized 64/8: one row and column short
    context.set_tensor_address("image", d_in)
    context.set_tensor_address("logits", d_out)
    _, stream = rt.cudaStreamCreateWithFlags(rt.cudaStreamNonBlocking)
    assert context.execute_async_v3(int(stream))
    assert rt.cudaStreamSynchronize(stream)[0] == rt.cudaError_t.cudaErrorIllegalAddress
