// Image -> network input: the C++ mirror of runtime/preprocess.py (same arithmetic, bit for bit).
#pragma once

#include <optional>
#include <utility>
#include <vector>

#include "deeplab/image.hpp"
#include "deeplab/model_meta.hpp"

namespace deeplab {

/// Where the real image sits inside the padded network input.
struct Padding {
    int height = 0;
    int width = 0;
    int padded_height = 0;
    int padded_width = 0;
};

/// The smallest size >= (height, width) whose sides are multiples of `multiple`.
std::pair<int, int> padded_size(int height, int width, int multiple);

/// The logits size the model gives for a padded input (sides multiples of `output_stride`): DeepLab v2's Caffe layout
/// (ceil-mode pooling) gives padded_height / output_stride + 1 rows and padded_width / output_stride + 1 columns.
std::pair<int, int> logits_size(int padded_height, int padded_width, int output_stride);

/// Throw deeplab::Error(invalid_argument) unless the image is usable (non-NULL, non-empty, sane size and stride).
void check_image(const ImageView& image);

/// BGR uint8 -> 1×3×H'×W' float32 in `out` (resized as needed), padded with zeros after normalization to `pad_to` or
/// to a multiple of the output stride: out = (image[channel_order] - mean) * scale, in float32 as numpy computes it.
/// Throws deeplab::Error(invalid_argument) for an empty image, a NULL pointer or an image larger than pad_to.
Padding preprocess(const ImageView& image, const ModelMeta& meta, std::vector<float>& out,
                   std::optional<std::pair<int, int>> pad_to = std::nullopt);

}  // namespace deeplab
