// ModelMeta from an already parsed JSON value (the engine sidecar nests it under "meta"). JSON: nlohmann/json.
#pragma once

#include <nlohmann/json.hpp>

#include "deeplab/model_meta.hpp"

namespace deeplab {

using Json = nlohmann::json;

ModelMeta meta_from_json_value(const Json& doc);
/// The Python type name of a JSON value ("str", "int", "list", ...), for messages that match the Python runtime's.
const char* python_type_name(const Json& v);

}  // namespace deeplab
