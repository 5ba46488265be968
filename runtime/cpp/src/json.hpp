// A small self-contained JSON reader for the model metadata and engine sidecars (no third-party dependency).
#pragma once

#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace deeplab::json {

struct Value;
using Array = std::vector<Value>;
using Object = std::map<std::string, Value>;

/// A parsed JSON value. Numbers are doubles (as in Python's json for the values we read).
struct Value {
    std::variant<std::nullptr_t, bool, double, std::string, std::shared_ptr<Array>, std::shared_ptr<Object>> v;

    bool is_null() const { return std::holds_alternative<std::nullptr_t>(v); }
    bool is_bool() const { return std::holds_alternative<bool>(v); }
    bool is_number() const { return std::holds_alternative<double>(v); }
    bool is_string() const { return std::holds_alternative<std::string>(v); }
    bool is_array() const { return std::holds_alternative<std::shared_ptr<Array>>(v); }
    bool is_object() const { return std::holds_alternative<std::shared_ptr<Object>>(v); }

    bool as_bool() const { return std::get<bool>(v); }
    double as_number() const { return std::get<double>(v); }
    const std::string& as_string() const { return std::get<std::string>(v); }
    const Array& as_array() const { return *std::get<std::shared_ptr<Array>>(v); }
    const Object& as_object() const { return *std::get<std::shared_ptr<Object>>(v); }
    /// The Python type name of this value ("str", "int", "list", ...), for error messages.
    const char* type_name() const;
};

/// Parse a complete JSON document; throws std::invalid_argument with the byte offset of the first error.
Value parse(std::string_view text);

}  // namespace deeplab::json
