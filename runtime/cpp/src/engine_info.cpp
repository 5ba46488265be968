#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <sstream>

#include "deeplab/engine_info.hpp"
#include "deeplab/error.hpp"
#include "json.hpp"
#include "meta_json.hpp"

namespace deeplab {
namespace {

[[noreturn]] void meta_error(const std::string& m) {
    throw Error(ErrorCode::metadata, m);
}

std::string join(const std::vector<std::string>& parts, const std::string& sep) {
    std::string out;
    for (size_t i = 0; i < parts.size(); ++i) out += (i ? sep : "") + parts[i];
    return out;
}

std::string info_string(const json::Object& d, const char* key, const std::string& path) {
    auto it = d.find(key);
    if (it == d.end() || it->second.is_null()) return "";
    if (it->second.is_string()) return it->second.as_string();
    if (it->second.is_number()) {  // Python's dataclass accepts any type here; keep numbers readable
        std::ostringstream s;
        s << it->second.as_number();
        return s.str();
    }
    meta_error("engine sidecar " + path + " is malformed: " + key + " must be a string");
}

EngineInfo info_from_object(const json::Value& v, const std::string& path) {
    if (!v.is_object()) meta_error("engine sidecar: 'engine' must be a JSON object");
    const auto& d = v.as_object();
    std::vector<std::string> missing;
    for (const char* k : {"tensorrt_version", "gpu_name", "compute_capability", "precision", "profile"})
        if (d.find(k) == d.end()) missing.push_back(k);
    if (!missing.empty()) meta_error("engine sidecar lacks " + join(missing, ", "));
    EngineInfo info;
    info.tensorrt_version = info_string(d, "tensorrt_version", path);
    info.gpu_name = info_string(d, "gpu_name", path);
    info.compute_capability = info_string(d, "compute_capability", path);
    info.precision = info_string(d, "precision", path);
    info.onnx_sha256 = info_string(d, "onnx_sha256", path);
    info.built_at = info_string(d, "built_at", path);
    info.onnx_path = info_string(d, "onnx_path", path);
    if (auto it = d.find("version_compatible"); it != d.end() && !it->second.is_null()) {
        if (!it->second.is_bool())
            meta_error("engine sidecar " + path + " is malformed: version_compatible must be a boolean");
        info.version_compatible = it->second.as_bool();
    }
    if (auto it = d.find("hardware_compatibility"); it != d.end() && !it->second.is_null())
        info.hardware_compatibility = info_string(d, "hardware_compatibility", path);
    if (auto it = d.find("dla_core"); it != d.end() && !it->second.is_null()) {
        if (!it->second.is_number())
            meta_error("engine sidecar " + path + " is malformed: dla_core must be an integer");
        info.dla_core = static_cast<int>(it->second.as_number());
    }
    const json::Value& profile = d.at("profile");
    const char* const keys[] = {"min", "opt", "max"};
    bool good = profile.is_object();
    for (int i = 0; good && i < 3; ++i) {
        auto it = profile.as_object().find(keys[i]);
        if (it == profile.as_object().end() || !it->second.is_array() || it->second.as_array().size() != 4) {
            good = false;
            break;
        }
        for (int j = 0; j < 4; ++j) {
            const json::Value& dim = it->second.as_array()[static_cast<size_t>(j)];
            if (!dim.is_number() || !std::isfinite(dim.as_number())) {
                good = false;
                break;
            }
            info.profile[static_cast<size_t>(i)][static_cast<size_t>(j)] = static_cast<std::int64_t>(dim.as_number());
        }
    }
    if (!good) meta_error("engine sidecar: profile must hold min/opt/max shapes of 4 dimensions");
    return info;
}

}  // namespace

std::string sidecar_path(const std::string& engine_path) {
    return engine_path + ".json";
}

std::pair<ModelMeta, EngineInfo> parse_sidecar(const std::string& text, const std::string& path) {
    json::Value doc;
    try {
        doc = json::parse(text);
    } catch (const std::invalid_argument& e) {
        meta_error("engine sidecar " + path + " is not valid JSON: " + e.what());
    }
    if (!doc.is_object() || doc.as_object().count("meta") == 0 || doc.as_object().count("engine") == 0)
        meta_error("engine sidecar " + path + " must hold 'meta' and 'engine' objects");
    ModelMeta meta;
    try {
        meta = meta_from_json_value(doc.as_object().at("meta"));
    } catch (const Error& e) {
        meta_error("engine sidecar " + path + ": " + e.what());
    }
    return {std::move(meta), info_from_object(doc.as_object().at("engine"), path)};
}

std::pair<ModelMeta, EngineInfo> read_sidecar(const std::string& engine_path) {
    const std::string path = sidecar_path(engine_path);
    std::ifstream f(path, std::ios::binary);
    if (!f) {
        if (errno == ENOENT) {
            const std::string name = path.substr(path.find_last_of('/') + 1);
            meta_error(
                "engine " + engine_path + " has no metadata sidecar (" + name +
                "); engines built by `python -m export engine MODEL.onnx -o ENGINE` carry one: rebuild the engine "
                "with it");
        }
        meta_error("cannot read engine sidecar " + path + ": " + std::strerror(errno));
    }
    std::ostringstream text;
    text << f.rdbuf();
    return parse_sidecar(text.str(), path);
}

std::pair<ModelMeta, EngineInfo> check_engine(const std::string& engine_path, const Platform& platform,
                                              std::vector<std::string>* warnings) {
    auto [meta, info] = read_sidecar(engine_path);
    Compatibility c = check_compatibility(info, platform, engine_path);
    if (!c.ok()) throw Error(ErrorCode::engine, c.message(engine_path));
    if (warnings) *warnings = c.warnings;
    return {std::move(meta), std::move(info)};
}

}  // namespace deeplab
