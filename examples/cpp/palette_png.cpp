#include "palette_png.hpp"

#include <zlib.h>

#include <cstdio>
#include <fstream>
#include <stdexcept>
#include <vector>

namespace example {
namespace {

void put_u32(std::vector<unsigned char>& out, std::uint32_t v) {
    for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<unsigned char>(v >> shift));
}

void chunk(std::ofstream& f, const char* type, const std::vector<unsigned char>& data) {
    std::vector<unsigned char> buf;
    put_u32(buf, static_cast<std::uint32_t>(data.size()));
    buf.insert(buf.end(), type, type + 4);
    buf.insert(buf.end(), data.begin(), data.end());
    const uLong crc = crc32(crc32(0L, Z_NULL, 0), buf.data() + 4, static_cast<uInt>(buf.size() - 4));
    put_u32(buf, static_cast<std::uint32_t>(crc));
    f.write(reinterpret_cast<const char*>(buf.data()), static_cast<std::streamsize>(buf.size()));
}

}  // namespace

Palette voc_palette() {
    Palette p{};
    for (int i = 0; i < 256; ++i) {
        int c = i, r = 0, g = 0, b = 0;
        for (int bit = 0; bit < 8; ++bit) {
            r |= ((c >> 0) & 1) << (7 - bit);
            g |= ((c >> 1) & 1) << (7 - bit);
            b |= ((c >> 2) & 1) << (7 - bit);
            c >>= 3;
        }
        p[3 * i] = static_cast<std::uint8_t>(r);
        p[3 * i + 1] = static_cast<std::uint8_t>(g);
        p[3 * i + 2] = static_cast<std::uint8_t>(b);
    }
    return p;
}

void write_palette_png(const std::string& path, const std::uint8_t* labels, int height, int width,
                       const Palette& palette, int compress_level) {
    if (labels == nullptr || height <= 0 || width <= 0) throw std::runtime_error("empty label map for " + path);
    // Scanlines with filter type 0 (None), then zlib.
    const size_t row = static_cast<size_t>(width) + 1;
    std::vector<unsigned char> raw(row * height);
    for (int y = 0; y < height; ++y) {
        raw[y * row] = 0;
        std::copy(labels + static_cast<size_t>(y) * width, labels + static_cast<size_t>(y + 1) * width,
                  raw.begin() + y * row + 1);
    }
    uLongf packed_size = compressBound(static_cast<uLong>(raw.size()));
    std::vector<unsigned char> packed(packed_size);
    if (compress2(packed.data(), &packed_size, raw.data(), static_cast<uLong>(raw.size()), compress_level) != Z_OK)
        throw std::runtime_error("zlib failed to compress " + path);
    packed.resize(packed_size);

    std::vector<unsigned char> ihdr;
    put_u32(ihdr, static_cast<std::uint32_t>(width));
    put_u32(ihdr, static_cast<std::uint32_t>(height));
    ihdr.insert(ihdr.end(), {8, 3, 0, 0, 0});  // 8-bit, palette colour, deflate, adaptive filters, no interlace

    const std::string tmp = path + ".tmp";
    {
        std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
        if (!f) throw std::runtime_error("cannot write " + tmp);
        static const unsigned char signature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
        f.write(reinterpret_cast<const char*>(signature), 8);
        chunk(f, "IHDR", ihdr);
        chunk(f, "PLTE", std::vector<unsigned char>(palette.begin(), palette.end()));
        chunk(f, "IDAT", packed);
        chunk(f, "IEND", {});
        if (!f.flush()) throw std::runtime_error("cannot write " + tmp);
    }
    if (std::rename(tmp.c_str(), path.c_str()) != 0) {
        std::remove(tmp.c_str());
        throw std::runtime_error("cannot rename " + tmp + " to " + path);
    }
}

}  // namespace example
