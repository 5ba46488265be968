// Engine sidecars (<engine>.json) and the check that an engine fits the TensorRT and GPU it is about to run on. Needs
// no TensorRT or GPU. The rules (versions, compatibility, the rebuild command: runtime/cpp/rules) are the Python
// runtime's too, which binds them (runtime._rules); each language reads the sidecar's JSON itself.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "deeplab/model_meta.hpp"

namespace deeplab {

/// How and where an engine was built (the sidecar's "engine" object).
struct EngineInfo {
    std::string tensorrt_version;
    std::string gpu_name;
    std::string compute_capability;                        // "8.7"
    std::string precision;                                 // fp32 | fp16 | int8
    std::array<std::array<std::int64_t, 4>, 3> profile{};  // min, opt, max as N,C,H,W
    std::string onnx_sha256;
    bool version_compatible = false;
    std::optional<std::string> hardware_compatibility;  // "ampere_plus" | "same_compute_capability"
    std::string built_at;
    std::string onnx_path;
    std::optional<int> dla_core;
};

/// The TensorRT and GPU an engine is about to run on; empty where unknown.
struct Platform {
    std::optional<std::string> tensorrt_version;
    std::optional<std::string> gpu_name;
    std::optional<std::string> compute_capability;
};

struct Compatibility {
    std::vector<std::string> problems;  ///< the engine will not load
    std::vector<std::string> warnings;  ///< it loads but may run slower
    std::string rebuild_command;

    bool ok() const { return problems.empty(); }
    /// What differs, then the command that rebuilds the engine ("" when ok).
    std::string message(const std::string& engine_path) const;
};

/// "model.plan" -> "model.plan.json".
std::string sidecar_path(const std::string& engine_path);
/// Read <engine>.json; throws deeplab::Error(ErrorCode::metadata) saying what is wrong.
std::pair<ModelMeta, EngineInfo> read_sidecar(const std::string& engine_path);
/// Parse a sidecar's text (path is only used in messages).
std::pair<ModelMeta, EngineInfo> parse_sidecar(const std::string& text, const std::string& path);

/// The first four runs of digits of a version ("10.3.0.26" -> 10, 3, 0, 26).
std::vector<int> version_tuple(const std::string& text);
/// Whether two versions agree on every component both give ("10.3" and "10.3.0.26" do).
bool same_version(const std::string& built, const std::string& running);
/// Whether a version-compatible plan built by TensorRT `built` runs on `running` (forward only, from 8.6 on, within a
/// major version, plus 8 -> 10 and 10 -> 11).
bool version_compatible_ok(const std::string& built, const std::string& running);
/// The `python -m export engine` command that rebuilds this engine with the same settings (shell-quoted).
std::string rebuild_command(const EngineInfo& info, const std::string& engine_path);
/// Compare an engine's build info with the platform (pure; unknown platform fields are skipped).
Compatibility check_compatibility(const EngineInfo& info, const Platform& platform, const std::string& engine_path);
/// read_sidecar + check_compatibility; throws deeplab::Error(ErrorCode::engine) with the rebuild command.
std::pair<ModelMeta, EngineInfo> check_engine(const std::string& engine_path, const Platform& platform,
                                              std::vector<std::string>* warnings = nullptr);

/// getInferLibVersion() -> "major.minor.patch" (8.x encodes M*1000+m*100+p, 10.x and later M*10000+m*100+p).
std::string tensorrt_version_string(std::int32_t encoded);
/// nvinfer1::DataType's value -> its name ("float32", "float16", "bfloat16", "fp8", ...; the values are the same in
/// every release from 8.5 to 11, later ones only append).
std::string tensorrt_type_name(int data_type);
/// Why a tensor of this type cannot be an input or output of the runtime ("" for float32, the only type it reads and
/// writes; the message says how to rebuild the engine).
std::string tensorrt_io_type_problem(const std::string& engine_path, const std::string& tensor, int data_type);

}  // namespace deeplab
