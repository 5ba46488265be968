#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <sstream>

#include "deeplab/engine_info.hpp"
#include "deeplab/error.hpp"
#include "meta_json.hpp"

namespace deeplab {
namespace {

[[noreturn]] void meta_error(const std::string& m) {
    throw Error(ErrorCode::metadata, m);
}

std::string info_string(const Json& d, const char* key, const std::string& path) {
    auto it = d.find(key);
    if (it == d.end() || it->is_null()) return "";
    if (it->is_string()) return it->get<std::string>();
    if (it->is_number()) {  // Python's dataclass accepts any type here; keep numbers readable
        std::ostringstream s;
        s << it->get<double>();
        return s.str();
    }
    meta_error("engine sidecar " + path + " is malformed: " + key + " must be a string");
}

EngineInfo info_from_object(const Json& d, const std::string& path) {
    if (!d.is_object()) meta_error("engine sidecar: 'engine' must be a JSON object");
    std::string missing;
    for (const char* k : {"tensorrt_version", "gpu_name", "compute_capability", "precision", "profile"})
        if (!d.contains(k)) missing += (missing.empty() ? "" : ", ") + std::string(k);
    if (!missing.empty()) meta_error("engine sidecar lacks " + missing);
    EngineInfo info;
    info.tensorrt_version = info_string(d, "tensorrt_version", path);
    info.gpu_name = info_string(d, "gpu_name", path);
    info.compute_capability = info_string(d, "compute_capability", path);
    info.precision = info_string(d, "precision", path);
    info.onnx_sha256 = info_string(d, "onnx_sha256", path);
    info.built_at = info_string(d, "built_at", path);
    info.onnx_path = info_string(d, "onnx_path", path);
    if (auto it = d.find("version_compatible"); it != d.end() && !it->is_null()) {
        if (!it->is_boolean())
            meta_error("engine sidecar " + path + " is malformed: version_compatible must be a boolean");
        info.version_compatible = it->get<bool>();
    }
    if (auto it = d.find("hardware_compatibility"); it != d.end() && !it->is_null())
        info.hardware_compatibility = info_string(d, "hardware_compatibility", path);
    if (auto it = d.find("dla_core"); it != d.end() && !it->is_null()) {
        if (!it->is_number()) meta_error("engine sidecar " + path + " is malformed: dla_core must be an integer");
        info.dla_core = static_cast<int>(it->get<double>());
    }
    const Json& profile = d.at("profile");
    const char* const keys[] = {"min", "opt", "max"};
    bool good = profile.is_object();
    for (int i = 0; good && i < 3; ++i) {
        auto it = profile.find(keys[i]);
        if (it == profile.end() || !it->is_array() || it->size() != 4) {
            good = false;
            break;
        }
        for (int j = 0; j < 4; ++j) {
            const Json& dim = (*it)[static_cast<size_t>(j)];
            if (!dim.is_number() || !std::isfinite(dim.get<double>())) {
                good = false;
                break;
            }
            info.profile[static_cast<size_t>(i)][static_cast<size_t>(j)] = static_cast<std::int64_t>(dim.get<double>());
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
    Json doc;
    try {
        doc = Json::parse(text);
    } catch (const Json::parse_error& e) {
        meta_error("engine sidecar " + path + " is not valid JSON: " + e.what());
    }
    if (!doc.is_object() || !doc.contains("meta") || !doc.contains("engine"))
        meta_error("engine sidecar " + path + " must hold 'meta' and 'engine' objects");
    ModelMeta meta;
    try {
        meta = meta_from_json_value(doc.at("meta"));
    } catch (const Error& e) {
        meta_error("engine sidecar " + path + ": " + e.what());
    }
    return {std::move(meta), info_from_object(doc.at("engine"), path)};
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
