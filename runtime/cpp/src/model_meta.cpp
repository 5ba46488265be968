#include "deeplab/model_meta.hpp"

#include <algorithm>
#include <cmath>

#include "deeplab/error.hpp"
#include "meta_json.hpp"

namespace deeplab {
namespace {

[[noreturn]] void fail(const std::string& message) {
    throw Error(ErrorCode::metadata, message);
}
[[noreturn]] void malformed(const std::string& what) {
    fail("model metadata is malformed: " + what);
}

std::string format_number(double d) {
    if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 1e15) return std::to_string(static_cast<long long>(d));
    return std::to_string(d);
}

/// Python's repr() of a JSON value, for messages that match the Python runtime's.
std::string py_repr(const Json& v) {
    switch (v.type()) {
        case Json::value_t::null:
            return "None";
        case Json::value_t::boolean:
            return v.get<bool>() ? "True" : "False";
        case Json::value_t::string:
            return "'" + v.get<std::string>() + "'";
        case Json::value_t::array: {
            std::string out = "[";
            for (std::size_t i = 0; i < v.size(); ++i) out += (i ? ", " : "") + py_repr(v[i]);
            return out + "]";
        }
        default:
            return v.dump();
    }
}

bool is_string(const Json& v, bool non_empty) {
    return v.is_string() && (!non_empty || !v.get<std::string>().empty());
}

/// mean or scale: 3 finite numbers (Python's ModelMeta.validate).
std::array<float, 3> get_triple(const Json& v, const char* name) {
    bool good = v.size() == 3;
    for (const auto& x : v) good = good && x.is_number() && std::isfinite(x.get<double>());
    if (!good) fail(std::string(name) + " must be 3 finite numbers, got " + py_repr(v));
    return {v[0].get<float>(), v[1].get<float>(), v[2].get<float>()};
}

/// extra["crf"]: a preset name or an object of a preset and numeric fields (other extra keys are kept by Python only).
void read_extra(const Json& extra, ModelMeta& m) {
    const auto it = extra.find("crf");
    if (it == extra.end() || it->is_null()) return;
    if (it->is_string()) {
        m.crf_preset = it->get<std::string>();
        return;
    }
    if (!it->is_object()) malformed("extra.crf must be a preset name or an object");
    for (const auto& [key, v] : it->items()) {
        if (key == "preset" && v.is_string())
            m.crf_preset = v.get<std::string>();
        else if (v.is_number())
            m.crf_overrides[key] = v.get<double>();
        else if (key == "half_rows" && v.is_boolean())
            m.crf_overrides[key] = v.get<bool>() ? 1 : 0;
        else
            malformed("extra.crf." + key + " must be a number");
    }
}

}  // namespace

const char* python_type_name(const Json& v) {
    switch (v.type()) {
        case Json::value_t::null:
            return "NoneType";
        case Json::value_t::boolean:
            return "bool";
        case Json::value_t::number_integer:
        case Json::value_t::number_unsigned:
            return "int";
        case Json::value_t::number_float:
            return "float";
        case Json::value_t::string:
            return "str";
        case Json::value_t::array:
            return "list";
        default:
            return "dict";
    }
}

// The checks and their order are runtime/metadata.py's (ModelMeta.from_dict, then validate), so that both runtimes
// report the same first problem; tests/data/model_meta_cases.json holds the cases both test.
ModelMeta meta_from_json_value(const Json& d) {
    if (!d.is_object()) fail("model metadata must be a JSON object");
    if (auto it = d.find("schema_version"); it != d.end()) {
        const Json& ver = *it;
        if (!ver.is_number() || ver.get<double>() != kMetaSchemaVersion)
            fail("model metadata schema version " +
                 (ver.is_number() ? format_number(ver.get<double>()) : py_repr(ver)) + " is not supported (expected " +
                 std::to_string(kMetaSchemaVersion) + ")");
    }
    static const char* const known[] = {
        "schema_version", "class_names", "channel_order", "mean", "scale",         "output_stride", "align_corners",
        "input_name",     "output_name", "precision",     "msc",  "source_sha256", "extra"};
    std::string unknown;
    for (const auto& [key, _] : d.items()) {  // objects iterate sorted by key, as Python's sorted() does
        if (std::find_if(std::begin(known), std::end(known), [&](const char* k) { return key == k; }) ==
            std::end(known))
            unknown += (unknown.empty() ? "" : ", ") + key;
    }
    if (!unknown.empty()) fail("model metadata has unknown fields: " + unknown);
    if (!d.contains("class_names")) fail("model metadata lacks class_names");
    for (const char* name : {"class_names", "mean", "scale"})
        if (d.contains(name) && !d.at(name).is_array())
            fail(std::string(name) + " must be a list, got " + python_type_name(d.at(name)));
    const Json none;
    auto field = [&](const char* name) -> const Json& { return d.contains(name) ? d.at(name) : none; };

    ModelMeta m;
    const Json& names = d.at("class_names");
    if (names.empty()) fail("model metadata lists no classes");
    for (const auto& n : names) {
        if (!is_string(n, true)) fail("class_names must be non-empty strings");
        m.class_names.push_back(n.get<std::string>());
    }
    if (d.contains("channel_order")) {
        const Json& order = d.at("channel_order");
        if (!order.is_string()) fail("channel_order must be a permutation of 'BGR', got " + py_repr(order));
        m.channel_order = order.get<std::string>();
        std::string sorted = m.channel_order;
        std::sort(sorted.begin(), sorted.end());
        if (sorted != "BGR") fail("channel_order must be a permutation of 'BGR', got " + py_repr(order));
    }
    if (d.contains("mean")) m.mean = get_triple(d.at("mean"), "mean");
    if (d.contains("scale")) {
        m.scale = get_triple(d.at("scale"), "scale");
        for (float x : m.scale)
            if (x == 0.f) fail("scale must not contain 0, got " + py_repr(d.at("scale")));
    }
    if (d.contains("output_stride")) {
        const Json& stride = d.at("output_stride");
        if (!stride.is_number_integer() || stride.get<double>() < 1 || stride.get<double>() > 1 << 20)
            fail("output_stride must be a positive integer, got " + py_repr(stride));
        m.output_stride = stride.get<int>();
    }
    if (d.contains("precision")) {
        const Json& precision = d.at("precision");
        if (!precision.is_string()) fail("precision must be fp32, fp16 or int8, got " + py_repr(precision));
        m.precision = precision.get<std::string>();
    }
    m.validate();  // the precision's value: the struct's own check
    for (const char* name : {"align_corners", "msc"})
        if (d.contains(name) && !d.at(name).is_boolean()) fail("align_corners and msc must be booleans");
    m.align_corners = field("align_corners").is_boolean() && field("align_corners").get<bool>();
    m.msc = field("msc").is_boolean() && field("msc").get<bool>();
    for (const char* name : {"input_name", "output_name"}) {
        if (d.contains(name) && !is_string(d.at(name), true)) fail(std::string(name) + " must be a non-empty string");
    }
    if (d.contains("input_name")) m.input_name = d.at("input_name").get<std::string>();
    if (d.contains("output_name")) m.output_name = d.at("output_name").get<std::string>();
    if (d.contains("source_sha256")) {
        if (!d.at("source_sha256").is_string()) fail("source_sha256 must be a string");
        m.source_sha256 = d.at("source_sha256").get<std::string>();
    }
    if (d.contains("extra")) {
        const Json& extra = d.at("extra");
        if (!extra.is_object()) fail(std::string("extra must be an object, got ") + python_type_name(extra));
        read_extra(extra, m);
    }
    return m;
}

ModelMeta ModelMeta::from_json(std::string_view text) {
    Json doc;
    try {
        doc = Json::parse(text);
    } catch (const Json::parse_error& e) {
        fail(std::string("model metadata is not valid JSON: ") + e.what());
    }
    return meta_from_json_value(doc);
}

void ModelMeta::validate() const {
    if (class_names.empty()) fail("model metadata lists no classes");
    for (const auto& n : class_names)
        if (n.empty()) fail("class_names must be non-empty strings");
    std::string order = channel_order;
    std::sort(order.begin(), order.end());
    if (order != "BGR") fail("channel_order must be a permutation of 'BGR', got '" + channel_order + "'");
    for (const auto* v : {&mean, &scale})
        for (float x : *v)
            if (!std::isfinite(x)) fail(std::string(v == &mean ? "mean" : "scale") + " must be 3 finite numbers");
    for (float x : scale)
        if (x == 0.f) fail("scale must not contain 0");
    if (output_stride < 1) fail("output_stride must be a positive integer, got " + std::to_string(output_stride));
    if (precision != "fp32" && precision != "fp16" && precision != "int8")
        fail("precision must be fp32, fp16 or int8, got '" + precision + "'");
    if (input_name.empty() || output_name.empty()) fail("input_name and output_name must be non-empty strings");
}

}  // namespace deeplab
