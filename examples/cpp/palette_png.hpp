// Palette ("P" mode) PNG label maps, as the Python runtime's --masks writes them: pixel = class index, VOC colours.
// OpenCV's PNG writer cannot write palette images, so this is a minimal encoder on zlib.
#pragma once

#include <array>
#include <cstdint>
#include <string>

namespace example {

using Palette = std::array<std::uint8_t, 256 * 3>;  // RGB triplets

/// The PASCAL VOC colour map (runtime.sinks.voc_palette): class 0 black, 1 maroon, 2 green, ...
Palette voc_palette();

/// Write an 8-bit palette PNG of height×width labels (row-major) atomically (temporary file, then rename).
/// Throws std::runtime_error when the file cannot be written.
void write_palette_png(const std::string& path, const std::uint8_t* labels, int height, int width,
                       const Palette& palette, int compress_level = 1);

}  // namespace example
