// Opening an engine file as a LogitsProvider (TensorRT when compiled in).
#pragma once

#include <memory>
#include <string>

#include "deeplab/engine_info.hpp"
#include "deeplab/segmenter.hpp"

namespace deeplab {

/// The engine's metadata and a provider running it on `device`; throws deeplab::Error (io, metadata, engine,
/// unsupported when this build has no TensorRT).
struct OpenedEngine {
    ModelMeta meta;
    std::unique_ptr<LogitsProvider> provider;
};
OpenedEngine open_engine(const std::string& engine_path, int device);

}  // namespace deeplab
