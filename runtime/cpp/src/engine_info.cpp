#include "deeplab/engine_info.hpp"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>

#include "deeplab/error.hpp"
#include "json.hpp"
#include "meta_json.hpp"

namespace deeplab {
namespace {

[[noreturn]] void meta_error(const std::string& m) {
    throw Error(ErrorCode::metadata, m);
}

std::vector<int> version_tuple(const std::string& text, size_t limit = 4) {
    std::vector<int> out;
    for (size_t i = 0; i < text.size() && out.size() < limit;) {
        if (text[i] >= '0' && text[i] <= '9') {
            long v = 0;
            while (i < text.size() && text[i] >= '0' && text[i] <= '9')
                v = std::min(v * 10 + (text[i++] - '0'), 1L << 30);
            out.push_back(static_cast<int>(v));
        } else {
            ++i;
        }
    }
    return out;
}

std::vector<int> cc_tuple(const std::string& text) {
    std::vector<int> p = version_tuple(text, 2);
    p.resize(2, 0);
    return p;
}

bool same_version(const std::string& built, const std::string& running) {
    const auto b = version_tuple(built), r = version_tuple(running);
    const size_t n = std::min(b.size(), r.size());
    return n > 0 && std::equal(b.begin(), b.begin() + static_cast<long>(n), r.begin());
}

/// Python's shlex.quote.
std::string shell_quote(const std::string& s) {
    if (s.empty()) return "''";
    bool safe = true;
    for (char c : s)
        if (!(std::isalnum(static_cast<unsigned char>(c)) || std::strchr("@%+=:,./-_", c) != nullptr)) safe = false;
    if (safe) return s;
    std::string out = "'";
    for (char c : s) out += c == '\'' ? std::string("'\"'\"'") : std::string(1, c);
    return out + "'";
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

std::string Compatibility::message(const std::string& engine_path) const {
    if (ok()) return "";
    return "engine " + engine_path + " does not fit this machine: " + join(problems, "; ") +
           ". Rebuild it here with:\n  " + rebuild_command;
}

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

bool version_compatible_ok(const std::string& built, const std::string& running) {
    auto b = version_tuple(built), r = version_tuple(running);
    auto prefix = [](const std::vector<int>& v, size_t n) {
        return std::vector<int>(v.begin(), v.begin() + static_cast<long>(std::min(n, v.size())));
    };
    if (prefix(b, 2) < std::vector<int>{8, 6} || prefix(r, 2) < std::vector<int>{8, 6} || prefix(r, 3) < prefix(b, 3))
        return false;
    return b[0] == r[0] || (b[0] == 8 && r[0] == 10) || (b[0] == 10 && r[0] == 11);
}

std::string rebuild_command(const EngineInfo& info, const std::string& engine_path) {
    std::vector<std::string> args = {
        "python", "-m",        "export",      "engine",      info.onnx_path.empty() ? "MODEL.onnx" : info.onnx_path,
        "-o",     engine_path, "--precision", info.precision};
    const char* const keys[] = {"min", "opt", "max"};
    for (int i = 0; i < 3; ++i) {
        std::string shape;
        for (int j = 0; j < 4; ++j)
            shape += (j ? "x" : "") + std::to_string(info.profile[static_cast<size_t>(i)][static_cast<size_t>(j)]);
        args.push_back(std::string("--") + keys[i] + "-shape");
        args.push_back(shape);
    }
    if (info.dla_core) {
        args.push_back("--dla-core");
        args.push_back(std::to_string(*info.dla_core));
    }
    if (info.version_compatible) args.push_back("--version-compatible");
    if (info.hardware_compatibility && !info.hardware_compatibility->empty()) {
        args.push_back("--hardware-compatibility");
        args.push_back(*info.hardware_compatibility);
    }
    for (auto& a : args) a = shell_quote(a);
    return join(args, " ");
}

Compatibility check_compatibility(const EngineInfo& info, const Platform& platform, const std::string& engine_path) {
    Compatibility c;
    if (platform.tensorrt_version && !platform.tensorrt_version->empty()) {
        const std::string& built = info.tensorrt_version;
        const std::string& running = *platform.tensorrt_version;
        if (info.version_compatible) {
            if (!version_compatible_ok(built, running))
                c.problems.push_back(
                    "built version-compatible by TensorRT " + built + ", which TensorRT " + running +
                    " cannot run (version compatibility is forward only: same major, or 8 -> 10, or 10 -> 11)");
        } else if (!same_version(built, running)) {
            c.problems.push_back("built by TensorRT " + built + ", this is TensorRT " + running);
        }
    }
    if (platform.compute_capability && !platform.compute_capability->empty()) {
        const auto bcc = cc_tuple(info.compute_capability), rcc = cc_tuple(*platform.compute_capability);
        const std::string gpu = platform.gpu_name && !platform.gpu_name->empty() ? *platform.gpu_name : "unknown";
        const bool has_level = info.hardware_compatibility && !info.hardware_compatibility->empty();
        if (has_level && *info.hardware_compatibility == "ampere_plus") {
            if (rcc < std::vector<int>{8, 0})
                c.problems.push_back("built for Ampere and later GPUs (compute capability ≥ 8.0), this GPU (" + gpu +
                                     ") is " + *platform.compute_capability);
        } else if (bcc != rcc) {
            c.problems.push_back("built for compute capability " + info.compute_capability + " (" + info.gpu_name +
                                 "), this GPU (" + gpu + ") is " + *platform.compute_capability);
        } else if (!has_level && platform.gpu_name && !platform.gpu_name->empty() &&
                   *platform.gpu_name != info.gpu_name) {
            c.warnings.push_back(
                "built on " + info.gpu_name + ", running on " + *platform.gpu_name +
                " (same compute capability: it loads, but TensorRT's kernel choices were timed on the other "
                "GPU)");
        }
    }
    c.rebuild_command = rebuild_command(info, engine_path);
    return c;
}

std::pair<ModelMeta, EngineInfo> check_engine(const std::string& engine_path, const Platform& platform,
                                              std::vector<std::string>* warnings) {
    auto [meta, info] = read_sidecar(engine_path);
    Compatibility c = check_compatibility(info, platform, engine_path);
    if (!c.ok()) throw Error(ErrorCode::engine, c.message(engine_path));
    if (warnings) *warnings = c.warnings;
    return {std::move(meta), std::move(info)};
}

std::string tensorrt_version_string(std::int32_t v) {
    const bool wide = v >= 100000;  // 10.0.0 = 100000; 8.6.1 = 8601
    const int major = wide ? v / 10000 : v / 1000;
    const int minor = wide ? (v % 10000) / 100 : (v % 1000) / 100;
    return std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(v % 100);
}

std::string tensorrt_type_name(int data_type) {
    static const char* const kNames[] = {"float32", "float16",  "int8",  "int32", "bool", "uint8",
                                         "fp8",     "bfloat16", "int64", "int4",  "fp4",  "e8m0"};
    if (data_type >= 0 && data_type < static_cast<int>(std::size(kNames))) return kNames[data_type];
    return "type " + std::to_string(data_type);
}

std::string tensorrt_io_type_problem(const std::string& engine_path, const std::string& tensor, int data_type) {
    if (data_type == 0) return "";
    return "engine " + engine_path + ": tensor '" + tensor + "' is " + tensorrt_type_name(data_type) +
           "; this runtime reads and writes float32 only: rebuild the engine from an ONNX with float32 inputs and "
           "outputs (python -m export fp16 without --fp16-io; python -m export engine keeps the ONNX's I/O types)";
}

}  // namespace deeplab
