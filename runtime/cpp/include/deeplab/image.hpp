// Views of caller-owned image and tensor memory.
#pragma once

#include <cstddef>
#include <cstdint>

namespace deeplab {

/// An 8-bit BGR image (OpenCV's CV_8UC3 layout): rows of width*3 bytes, row_stride bytes apart.
struct ImageView {
  const std::uint8_t* data = nullptr;
  int height = 0;
  int width = 0;
  std::size_t row_stride = 0;  ///< bytes between rows; 0 means width*3

  std::size_t stride() const { return row_stride ? row_stride : static_cast<std::size_t>(width) * 3; }
};

/// Network logits: channels × height × width float32, row-major, owned by whoever produced them.
struct LogitsView {
  const float* data = nullptr;
  int channels = 0;
  int height = 0;
  int width = 0;
};

}  // namespace deeplab
