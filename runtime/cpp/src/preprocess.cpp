#include "deeplab/preprocess.hpp"

#include <algorithm>
#include <limits>
#include <string>

#include "deeplab/error.hpp"

namespace deeplab {

std::pair<int, int> padded_size(int height, int width, int multiple) {
    auto up = [multiple](int v) { return (v + multiple - 1) / multiple * multiple; };
    return {up(height), up(width)};
}

std::pair<int, int> logits_size(int padded_height, int padded_width, int output_stride) {
    return {padded_height / output_stride + 1, padded_width / output_stride + 1};
}

void check_image(const ImageView& image) {
    if (image.data == nullptr) throw Error(ErrorCode::invalid_argument, "image data is NULL");
    if (image.height <= 0 || image.width <= 0)
        throw Error(ErrorCode::invalid_argument,
                    "image is empty (" + std::to_string(image.height) + "×" + std::to_string(image.width) + ")");
    constexpr int kMaxSide = 1 << 15;  // keeps 3*H'*W' and every index below far from overflow
    if (image.height > kMaxSide || image.width > kMaxSide)
        throw Error(ErrorCode::invalid_argument, "image " + std::to_string(image.height) + "×" +
                                                     std::to_string(image.width) + " is larger than " +
                                                     std::to_string(kMaxSide) + " pixels a side");
    if (image.row_stride != 0 && image.row_stride < static_cast<std::size_t>(image.width) * 3)
        throw Error(ErrorCode::invalid_argument, "image row stride " + std::to_string(image.row_stride) +
                                                     " is smaller than width*3 = " + std::to_string(image.width * 3));
}

Padding preprocess(const ImageView& image, const ModelMeta& meta, std::vector<float>& out,
                   std::optional<std::pair<int, int>> pad_to) {
    check_image(image);
    const auto [ph, pw] = pad_to ? *pad_to : padded_size(image.height, image.width, meta.output_stride);
    if (ph < image.height || pw < image.width)
        throw Error(ErrorCode::invalid_argument, "image " + std::to_string(image.height) + "×" +
                                                     std::to_string(image.width) + " is larger than the model input " +
                                                     std::to_string(ph) + "×" + std::to_string(pw));
    const std::size_t plane = static_cast<std::size_t>(ph) * pw;
    out.assign(3 * plane, 0.0f);
    int source_channel[3];
    for (int c = 0; c < 3; ++c) source_channel[c] = static_cast<int>(std::string("BGR").find(meta.channel_order[c]));
    const std::size_t stride = image.stride();
    for (int c = 0; c < 3; ++c) {
        const float mean = meta.mean[c], scale = meta.scale[c];
        const int sc = source_channel[c];
        float* dst = out.data() + c * plane;
        for (int y = 0; y < image.height; ++y) {
            const std::uint8_t* row = image.data + y * stride;
            float* d = dst + static_cast<std::size_t>(y) * pw;
            for (int x = 0; x < image.width; ++x) d[x] = (static_cast<float>(row[3 * x + sc]) - mean) * scale;
        }
    }
    return {image.height, image.width, ph, pw};
}

}  // namespace deeplab
