#include "deeplab/npy.hpp"

#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>
#include <sstream>

#include "deeplab/error.hpp"

namespace deeplab {
namespace {

[[noreturn]] void bad(const std::string& path, const std::string& why) {
    throw Error(ErrorCode::invalid_argument, "npy file " + path + ": " + why);
}

/// The value of 'key' in the header's Python dict literal (a small, fixed grammar written by numpy).
std::string header_field(const std::string& header, const std::string& key, const std::string& path) {
    const size_t k = header.find("'" + key + "'");
    if (k == std::string::npos) bad(path, "header lacks '" + key + "'");
    size_t v = header.find(':', k);
    if (v == std::string::npos) bad(path, "malformed header");
    ++v;
    while (v < header.size() && header[v] == ' ') ++v;
    size_t end = v;
    if (header[v] == '\'')
        end = header.find('\'', v + 1) + 1;
    else if (header[v] == '(')
        end = header.find(')', v) + 1;
    else
        end = header.find_first_of(",}", v);
    if (end == std::string::npos || end == 0 || end > header.size()) bad(path, "malformed header");
    return header.substr(v, end - v);
}

void write_file(const std::string& path, const std::string& dtype, const void* data, size_t bytes,
                const std::vector<std::int64_t>& shape) {
    std::string dims;  // Python's tuple repr: "(2, 3)", "(5,)", "()"
    for (size_t i = 0; i < shape.size(); ++i) dims += (i ? ", " : "") + std::to_string(shape[i]);
    if (shape.size() == 1) dims += ",";
    std::string header = "{'descr': '" + dtype + "', 'fortran_order': False, 'shape': (" + dims + "), }";
    const size_t unpadded = 10 + header.size() + 1;
    header.append((64 - unpadded % 64) % 64, ' ');
    header += '\n';
    const std::string tmp = path + ".tmp";
    {
        std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
        if (!f) throw Error(ErrorCode::io, "cannot write " + tmp);
        const char magic[8] = {'\x93', 'N', 'U', 'M', 'P', 'Y', 1, 0};
        f.write(magic, 8);
        const std::uint16_t len = static_cast<std::uint16_t>(header.size());
        const char len_le[2] = {static_cast<char>(len & 0xFF), static_cast<char>(len >> 8)};
        f.write(len_le, 2);
        f.write(header.data(), static_cast<std::streamsize>(header.size()));
        f.write(static_cast<const char*>(data), static_cast<std::streamsize>(bytes));
        if (!f) throw Error(ErrorCode::io, "cannot write " + tmp);
    }
    if (std::rename(tmp.c_str(), path.c_str()) != 0) {
        std::remove(tmp.c_str());
        throw Error(ErrorCode::io, "cannot rename " + tmp + " to " + path);
    }
}

std::int64_t product(const std::vector<std::int64_t>& shape) {
    std::int64_t n = 1;
    for (auto d : shape) n *= d;
    return n;
}

}  // namespace

std::int64_t NpyArray::size() const {
    return product(shape);
}

NpyArray read_npy(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    if (!f) throw Error(ErrorCode::io, "cannot read " + path);
    char magic[8];
    if (!f.read(magic, 8) || std::memcmp(magic, "\x93NUMPY", 6) != 0) bad(path, "not a .npy file");
    const int major = static_cast<unsigned char>(magic[6]);
    size_t header_len = 0;
    if (major == 1) {
        unsigned char l[2];
        if (!f.read(reinterpret_cast<char*>(l), 2)) bad(path, "truncated header");
        header_len = l[0] | (l[1] << 8);
    } else if (major == 2 || major == 3) {
        unsigned char l[4];
        if (!f.read(reinterpret_cast<char*>(l), 4)) bad(path, "truncated header");
        header_len = l[0] | (l[1] << 8) | (l[2] << 16) | (static_cast<size_t>(l[3]) << 24);
        if (header_len > (1u << 20)) bad(path, "header too large");
    } else {
        bad(path, "unsupported format version " + std::to_string(major));
    }
    std::string header(header_len, '\0');
    if (!f.read(header.data(), static_cast<std::streamsize>(header_len))) bad(path, "truncated header");

    NpyArray a;
    const std::string descr = header_field(header, "descr", path);
    a.dtype = descr.size() >= 2 ? descr.substr(1, descr.size() - 2) : "";
    if (a.dtype != "<f4" && a.dtype != "|u1" && a.dtype != "<u1")
        bad(path, "dtype " + a.dtype + " is not supported (float32 or uint8)");
    if (header_field(header, "fortran_order", path) != "False") bad(path, "Fortran order is not supported");
    const std::string shape = header_field(header, "shape", path);
    std::int64_t n = 1;
    for (size_t i = 1; i < shape.size();) {
        if (shape[i] >= '0' && shape[i] <= '9') {
            std::int64_t d = 0;
            while (i < shape.size() && shape[i] >= '0' && shape[i] <= '9') {
                d = d * 10 + (shape[i++] - '0');
                if (d > (std::int64_t(1) << 40)) bad(path, "dimension too large");
            }
            a.shape.push_back(d);
            n *= d;
            if (n > (std::int64_t(1) << 34)) bad(path, "array too large");
        } else {
            ++i;
        }
    }
    const size_t elem = a.dtype == "<f4" ? 4 : 1;
    std::vector<char> bytes(static_cast<size_t>(n) * elem);
    if (!f.read(bytes.data(), static_cast<std::streamsize>(bytes.size()))) bad(path, "truncated data");
    if (elem == 4) {
        a.f32.resize(static_cast<size_t>(n));
        std::memcpy(a.f32.data(), bytes.data(), bytes.size());  // little-endian hosts (x86-64, aarch64)
    } else {
        a.dtype = "|u1";
        a.u8.assign(bytes.begin(), bytes.end());
    }
    return a;
}

void write_npy(const std::string& path, const float* data, const std::vector<std::int64_t>& shape) {
    write_file(path, "<f4", data, static_cast<size_t>(product(shape)) * 4, shape);
}

void write_npy(const std::string& path, const std::uint8_t* data, const std::vector<std::int64_t>& shape) {
    write_file(path, "|u1", data, static_cast<size_t>(product(shape)), shape);
}

}  // namespace deeplab
