// ModelMeta from an already parsed JSON value (the engine sidecar nests it under "meta").
#pragma once

#include "deeplab/model_meta.hpp"
#include "json.hpp"

namespace deeplab {

ModelMeta meta_from_json_value(const json::Value& doc);

}  // namespace deeplab
