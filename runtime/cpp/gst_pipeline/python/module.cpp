// nanobind module runtime._gst_pipeline: deeplab/gst_pipeline.hpp for runtime/gst_source.py.
#include <nanobind/nanobind.h>
#include <nanobind/stl/set.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include "deeplab/gst_pipeline.hpp"

namespace nb = nanobind;

NB_MODULE(_gst_pipeline, m) {
    m.doc() = "GStreamer pipeline strings for source URIs (the builder the C++ example uses too)";
    m.attr("SINK_NAME") = deeplab::kGstSinkName;
    m.def("is_gst_uri", &deeplab::is_gst_uri, nb::arg("uri"));
    m.def("is_live_uri", &deeplab::is_live_uri, nb::arg("uri"));
    m.def("elements", &deeplab::gst_elements);
    // ValueError (std::invalid_argument) with a one-line message when the URI is bad or an element is missing.
    m.def(
        "build",
        [](const std::string& uri, const std::set<std::string>& available) {
            const deeplab::GstPipeline p = deeplab::gst_pipeline(uri, available);
            nb::dict d;
            d["kind"] = p.kind;
            d["pipeline"] = p.pipeline;
            d["live"] = p.live;
            d["own_sink"] = p.own_sink;
            return d;
        },
        nb::arg("uri"), nb::arg("available"));
}
