// Errors of the C++ runtime. Every failure is a deeplab::Error carrying a code that the C API returns as is.
#pragma once

#include <stdexcept>
#include <string>

#include "deeplab/deeplab.h"

namespace deeplab {

/// The error codes of the C API (deeplab_status), usable from C++.
enum class ErrorCode : int {
    invalid_argument = DEEPLAB_ERROR_INVALID_ARGUMENT,
    metadata = DEEPLAB_ERROR_METADATA,
    engine = DEEPLAB_ERROR_ENGINE,
    provider = DEEPLAB_ERROR_PROVIDER,
    unsupported = DEEPLAB_ERROR_UNSUPPORTED,
    io = DEEPLAB_ERROR_IO,
    out_of_memory = DEEPLAB_ERROR_OUT_OF_MEMORY,
    internal = DEEPLAB_ERROR_INTERNAL,
};

/// A one-line message and the code that classifies it.
class Error : public std::runtime_error {
  public:
    Error(ErrorCode code, const std::string& message) : std::runtime_error(message), code_(code) {}
    ErrorCode code() const noexcept { return code_; }

  private:
    ErrorCode code_;
};

}  // namespace deeplab
