"""The binding-source parser: known facts of each release's Python API, and the C++ forms it must read."""
from __future__ import annotations

import pytest
from trt_standin.surface import Surface, parse_source, read_surface




def test_parses_chains_named_bindings_nested_enums_and_module_names():
    src = r'''
    // py::class_<Commented>(m, "Commented").def("nope", f);
    py::class_<ILogger, PyLogger> baseBinding{m, "ILogger", "doc", py::module_local()};
    py::enum_<ILogger::Severity>(baseBinding, "Severity", py::arithmetic())
        .value("ERROR", ILogger::Severity::kERROR, "an (odd) doc; with ) inside")
        .value("WARNING", ILogger::Severity::kWARNING)
        .export_values();
    baseBinding.def(py::init<>()).def("log", &ILogger::log, "severity"_a, "msg"_a);
    py::class_<DefaultLogger, ILogger>(m, "Logger")
        .def_readwrite("min_severity", &DefaultLogger::mMin)
        .def("run", [](Foo& self) { if (a(b)) { return c; } return d; }, "x"_a)
        .def_property_readonly("engine", &X::getEngine)
        .def_static("make", &X::make);
    m.def("get_version", &getVersion);
    m.attr("float32") = DataType::kFLOAT;
    '''
    s = Surface("test")
    cpp: dict[str, str] = {}
    parse_source(src, s, cpp)
    assert set(s.bindings) == {"ILogger", "Logger"} and "Commented" not in s.bindings
    assert s.bindings["ILogger"].members == {"log"}
    assert s.nested[("ILogger", "Severity")].values == [("ERROR", "ILogger::Severity::kERROR"),
                                                         ("WARNING", "ILogger::Severity::kWARNING")]
    assert s.bindings["Logger"].members == {"min_severity", "run", "engine", "make"}
    assert s.functions == {"get_version"} and s.attributes == {"float32": "DataType::kFLOAT"}
    assert cpp["DefaultLogger"] == "Logger" and s.bindings["Logger"].bases == ["ILogger"]


@pytest.mark.parametrize("dotted, present_in", [
    ("BuilderFlag.FP16", {"8.5.3", "8.6.1", "10.3.0", "10.13.3", "10.16"}),
    ("BuilderFlag.INT8", {"8.5.3", "8.6.1", "10.3.0", "10.13.3", "10.16"}),
    ("BuilderFlag.VERSION_COMPATIBLE", {"8.6.1", "10.3.0", "10.13.3", "10.16", "11.1"}),
    ("NetworkDefinitionCreationFlag.EXPLICIT_BATCH", {"8.5.3", "8.6.1", "10.3.0", "10.13.3", "10.16"}),
    ("NetworkDefinitionCreationFlag.STRONGLY_TYPED", {"10.3.0", "10.13.3", "10.16", "11.1"}),
    ("IExecutionContext.execute_async_v2", {"8.5.3", "8.6.1"}),
    ("IExecutionContext.execute_async_v3", {"8.5.3", "8.6.1", "10.3.0", "10.13.3", "10.16", "11.1"}),
    ("ICudaEngine.device_memory_size", {"8.5.3", "8.6.1", "10.3.0", "10.13.3", "10.16"}),
    ("ICudaEngine.device_memory_size_v2", {"10.3.0", "10.13.3", "10.16", "11.1"}),
    ("ICudaEngine.create_execution_context_without_device_memory", {"8.5.3", "8.6.1", "10.3.0", "10.13.3", "10.16"}),
    ("IInt8EntropyCalibrator2", {"8.5.3", "8.6.1", "10.3.0", "10.13.3", "10.16"}),
    ("IProgressMonitor", {"10.3.0", "10.13.3", "10.16", "11.1"}),
    ("ParserError.node_name", {"10.3.0", "10.13.3", "10.16", "11.1"}),
    ("HardwareCompatibilityLevel.SAME_COMPUTE_CAPABILITY", {"10.13.3", "10.16", "11.1"}),
    ("Logger.WARNING", {"8.5.3", "8.6.1", "10.3.0", "10.13.3", "10.16", "11.1"}),  # inherited from ILogger
    ("IBuilderConfig.max_workspace_size", {"8.5.3", "8.6.1"}),
    ("get_nv_onnx_parser_version", {"8.5.3", "8.6.1", "10.3.0", "10.13.3", "10.16", "11.1"}),
])
def test_release_facts(dotted, present_in, api_surfaces):
    got = {v for v, s in api_surfaces.items() if s.has(dotted)}
    assert got == present_in & set(api_surfaces), dotted


def test_every_release_has_the_runtime_api(api_surfaces):
    for v, s in api_surfaces.items():
        for name in ("Runtime.deserialize_cuda_engine", "ICudaEngine.num_io_tensors", "ICudaEngine.get_tensor_name",
                     "ICudaEngine.get_tensor_mode", "ICudaEngine.get_tensor_dtype", "IExecutionContext.set_input_shape",
                     "IExecutionContext.get_tensor_shape", "IExecutionContext.set_tensor_address",
                     "TensorIOMode.INPUT", "DataType.HALF", "OnnxParser.parse_from_file"):
            assert s.has(name), (v, name)


def test_missing_release_folder_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no binding sources"):
        read_surface(tmp_path / "9.9")
