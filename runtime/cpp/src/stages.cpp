#include "stages.hpp"

#include "deeplab/error.hpp"
#include "deeplab/upsample.hpp"

namespace deeplab {

UpsampleShape upsample_shape(const LogitsView& logits, const Padding& padding) {
    UpsampleShape shape;
    shape.n = 1;
    shape.c = logits.channels;
    shape.in_h = logits.height;
    shape.in_w = logits.width;
    shape.out_h = padding.padded_height;
    shape.out_w = padding.padded_width;
    shape.crop_h = padding.height;
    shape.crop_w = padding.width;
    return shape;
}

void upsample_softmax(const LogitsView& logits, const Padding& padding, bool align_corners, int threads,
                      std::vector<float>& probs) {
    const UpsampleShape shape = upsample_shape(logits, padding);
    probs.resize(static_cast<std::size_t>(logits.channels) * padding.height * padding.width);
    set_num_threads(threads);
    bilinear_softmax(logits.data, probs.data(), shape, align_corners);
}

void upsample_labels(const LogitsView& logits, const Padding& padding, bool align_corners, int threads,
                     std::uint8_t* labels) {
    const UpsampleShape shape = upsample_shape(logits, padding);
    set_num_threads(threads);
    bilinear_argmax(logits.data, labels, shape, align_corners);
}

void argmax_labels(const float* probs, int channels, int height, int width, std::uint8_t* labels) {
    const std::size_t plane = static_cast<std::size_t>(height) * width;
    for (std::size_t i = 0; i < plane; ++i) {
        float best = probs[i];
        int label = 0;
        for (int c = 1; c < channels; ++c) {
            const float v = probs[c * plane + i];
            if (v > best) {  // the first maximum wins, as numpy's argmax
                best = v;
                label = c;
            }
        }
        labels[i] = static_cast<std::uint8_t>(label);
    }
}

}  // namespace deeplab
