// NumPy .npy files (format 1.0/2.0/3.0, C order, little-endian float32 / uint8): the logits exchange format between
// the Python runtime (`examples/cpp/dump_logits.py --out DIR`) and C++ services, and the tests' golden arrays.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace deeplab {

struct NpyArray {
    std::string dtype;  // "<f4" or "|u1"
    std::vector<std::int64_t> shape;
    std::vector<float> f32;        // when dtype is "<f4"
    std::vector<std::uint8_t> u8;  // when dtype is "|u1"

    std::int64_t size() const;
};

/// Read a float32 or uint8 .npy file; throws deeplab::Error (io, or invalid_argument naming what is unsupported).
NpyArray read_npy(const std::string& path);
/// Write a C-order .npy file (atomically: a temporary file in the same folder, then a rename).
void write_npy(const std::string& path, const float* data, const std::vector<std::int64_t>& shape);
void write_npy(const std::string& path, const std::uint8_t* data, const std::vector<std::int64_t>& shape);

}  // namespace deeplab
