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
/// A GPU provider (the TensorRT runner) also passes the same logits in device memory and the CUDA stream that wrote
/// them, so a build with CUDA upsamples them on the GPU.
struct LogitsView {
    const float* data = nullptr;  ///< host copy (always set)
    int channels = 0;
    int height = 0;
    int width = 0;
    const float* device_data = nullptr;  ///< optional: the logits in device memory
    void* cuda_stream = nullptr;         ///< the cudaStream_t that produced device_data
};

}  // namespace deeplab
