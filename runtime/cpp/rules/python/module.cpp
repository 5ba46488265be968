// nanobind module `runtime._rules`: the engine rules of deeplab::rules (include/deeplab/engine_info.hpp) for the
// Python runtime (runtime/engine_info.py), so both runtimes run one definition.
#include <nanobind/nanobind.h>
#include <nanobind/stl/array.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include "deeplab/engine_info.hpp"

namespace nb = nanobind;
using namespace deeplab;

NB_MODULE(_rules, m) {
    nb::class_<EngineInfo>(m, "EngineInfo", "The build facts the rules read (the sidecar's 'engine' object).")
        .def(nb::init<>())
        .def_rw("tensorrt_version", &EngineInfo::tensorrt_version)
        .def_rw("gpu_name", &EngineInfo::gpu_name)
        .def_rw("compute_capability", &EngineInfo::compute_capability)
        .def_rw("precision", &EngineInfo::precision)
        .def_rw("profile", &EngineInfo::profile)
        .def_rw("version_compatible", &EngineInfo::version_compatible)
        .def_rw("hardware_compatibility", &EngineInfo::hardware_compatibility)
        .def_rw("onnx_path", &EngineInfo::onnx_path)
        .def_rw("dla_core", &EngineInfo::dla_core);
    nb::class_<Platform>(m, "Platform")
        .def(nb::init<>())
        .def_rw("tensorrt_version", &Platform::tensorrt_version)
        .def_rw("gpu_name", &Platform::gpu_name)
        .def_rw("compute_capability", &Platform::compute_capability);
    nb::class_<Compatibility>(m, "Compatibility")
        .def_ro("problems", &Compatibility::problems)
        .def_ro("warnings", &Compatibility::warnings)
        .def_ro("rebuild_command", &Compatibility::rebuild_command);
    m.def("version_tuple", &version_tuple, nb::arg("text"));
    m.def("same_version", &same_version, nb::arg("built"), nb::arg("running"));
    m.def("version_compatible_ok", &version_compatible_ok, nb::arg("built"), nb::arg("running"));
    m.def("rebuild_command", &rebuild_command, nb::arg("info"), nb::arg("engine_path"));
    m.def("check_compatibility", &check_compatibility, nb::arg("info"), nb::arg("platform"), nb::arg("engine_path"));
}
