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

std::string get_string(const json::Value& v, const char* name) {
    if (!v.is_string()) malformed(std::string(name) + " must be a string, got " + v.type_name());
    return v.as_string();
}

bool get_bool(const json::Value& v) {
    if (!v.is_bool()) fail("align_corners and msc must be booleans");
    return v.as_bool();
}

std::array<float, 3> get_triple(const json::Value& v, const char* name) {
    if (!v.is_array()) malformed(std::string(name) + " must be a list of numbers, got " + v.type_name());
    const auto& a = v.as_array();
    for (const auto& x : a)
        if (!x.is_number()) malformed(std::string(name) + " must be a list of numbers");
    if (a.size() != 3) fail(std::string(name) + " must have 3 values, got " + std::to_string(a.size()));
    return {static_cast<float>(a[0].as_number()), static_cast<float>(a[1].as_number()),
            static_cast<float>(a[2].as_number())};
}

/// extra["crf"]: a preset name or a dict of crf.refine keyword arguments (other extra keys are kept by Python only).
void read_extra(const json::Value& extra, ModelMeta& m) {
    if (!extra.is_object()) return;
    const auto it = extra.as_object().find("crf");
    if (it == extra.as_object().end() || it->second.is_null()) return;
    if (it->second.is_string()) {
        m.crf_preset = it->second.as_string();
        return;
    }
    if (!it->second.is_object()) malformed("extra.crf must be a preset name or an object");
    for (const auto& [key, v] : it->second.as_object()) {
        if (key == "preset" && v.is_string())
            m.crf_preset = v.as_string();
        else if (v.is_number())
            m.crf_overrides[key] = v.as_number();
        else if (key == "half_rows" && v.is_bool())
            m.crf_overrides[key] = v.as_bool() ? 1 : 0;
        else
            malformed("extra.crf." + key + " must be a number");
    }
}

}  // namespace

ModelMeta meta_from_json_value(const json::Value& doc) {
    if (!doc.is_object()) fail("model metadata must be a JSON object");
    const auto& d = doc.as_object();
    if (auto it = d.find("schema_version"); it != d.end()) {
        const json::Value& ver = it->second;
        if (!ver.is_number() || ver.as_number() != kMetaSchemaVersion)
            fail("model metadata schema version " +
                 (ver.is_number() ? format_number(ver.as_number()) : ver.type_name()) + " is not supported (expected " +
                 std::to_string(kMetaSchemaVersion) + ")");
    }
    static const char* const known[] = {
        "schema_version", "class_names", "channel_order", "mean", "scale",         "output_stride", "align_corners",
        "input_name",     "output_name", "precision",     "msc",  "source_sha256", "extra"};
    std::string unknown;
    for (const auto& [key, _] : d) {  // std::map iterates sorted, as Python's sorted() does
        if (std::find_if(std::begin(known), std::end(known), [&](const char* k) { return key == k; }) ==
            std::end(known))
            unknown += (unknown.empty() ? "" : ", ") + key;
    }
    if (!unknown.empty()) fail("model metadata has unknown fields: " + unknown);

    ModelMeta m;
    const auto names = d.find("class_names");
    if (names == d.end()) fail("model metadata lacks class_names");
    if (!names->second.is_array())
        malformed("class_names must be a list, got " + std::string(names->second.type_name()));
    for (const auto& n : names->second.as_array()) {
        if (n.is_string())
            m.class_names.push_back(n.as_string());
        else if (n.is_number())
            m.class_names.push_back(format_number(n.as_number()));
        else
            malformed("class_names must be strings");
    }
    for (const auto& [key, v] : d) {
        if (key == "channel_order")
            m.channel_order = get_string(v, "channel_order");
        else if (key == "mean")
            m.mean = get_triple(v, "mean");
        else if (key == "scale")
            m.scale = get_triple(v, "scale");
        else if (key == "output_stride") {
            if (!v.is_number() || v.as_number() != std::floor(v.as_number()) || std::fabs(v.as_number()) > 1 << 20)
                malformed("output_stride must be an integer");
            m.output_stride = static_cast<int>(v.as_number());
        } else if (key == "align_corners")
            m.align_corners = get_bool(v);
        else if (key == "msc")
            m.msc = get_bool(v);
        else if (key == "input_name")
            m.input_name = get_string(v, "input_name");
        else if (key == "output_name")
            m.output_name = get_string(v, "output_name");
        else if (key == "precision")
            m.precision = get_string(v, "precision");
        else if (key == "source_sha256")
            m.source_sha256 = get_string(v, "source_sha256");
        else if (key == "extra")
            read_extra(v, m);
    }
    m.validate();
    return m;
}

ModelMeta ModelMeta::from_json(std::string_view text) {
    json::Value doc;
    try {
        doc = json::parse(text);
    } catch (const std::invalid_argument& e) {
        fail(std::string("model metadata is not valid JSON: ") + e.what());
    }
    return meta_from_json_value(doc);
}

void ModelMeta::validate() const {
    if (class_names.empty()) fail("model metadata lists no classes");
    std::string order = channel_order;
    std::sort(order.begin(), order.end());
    if (order != "BGR") fail("channel_order must be a permutation of 'BGR', got '" + channel_order + "'");
    if (output_stride < 1) fail("output_stride must be positive, got " + std::to_string(output_stride));
    if (precision != "fp32" && precision != "fp16" && precision != "int8")
        fail("precision must be fp32, fp16 or int8, got '" + precision + "'");
}

}  // namespace deeplab
