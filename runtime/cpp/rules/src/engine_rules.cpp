#include <algorithm>
#include <cctype>
#include <cstring>
#include <iterator>

#include "deeplab/engine_info.hpp"

namespace deeplab {
namespace {

std::vector<int> digits(const std::string& text, size_t limit) {
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
    std::vector<int> p = digits(text, 2);
    p.resize(2, 0);
    return p;
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

}  // namespace

std::vector<int> version_tuple(const std::string& text) {
    return digits(text, 4);
}

bool same_version(const std::string& built, const std::string& running) {
    const auto b = version_tuple(built), r = version_tuple(running);
    const size_t n = std::min(b.size(), r.size());
    return n > 0 && std::equal(b.begin(), b.begin() + static_cast<long>(n), r.begin());
}

std::string Compatibility::message(const std::string& engine_path) const {
    if (ok()) return "";
    return "engine " + engine_path + " does not fit this machine: " + join(problems, "; ") +
           ". Rebuild it here with:\n  " + rebuild_command;
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
