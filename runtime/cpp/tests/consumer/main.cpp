// Runs the installed runtime once through the C++ API and once through the C API with a constant logits provider.
#include <cstdio>
#include <algorithm>
#include <cstring>
#include <memory>
#include <vector>

#include "deeplab/deeplab.h"
#include "deeplab/segmenter.hpp"

namespace {

const char* kMeta = R"({"class_names": ["background", "thing"]})";

class Constant final : public deeplab::LogitsProvider {
  public:
    deeplab::LogitsView infer(const float*, int height, int width) override {
        const int h = height / 8 + 1, w = width / 8 + 1;  // DeepLab's logits for the padded input
        logits_.assign(static_cast<size_t>(2) * h * w, 0.0f);
        std::fill(logits_.begin() + h * w, logits_.end(), 1.0f);  // "thing" wins everywhere
        return {logits_.data(), 2, h, w};
    }

  private:
    std::vector<float> logits_;
};

int provide(void* user, const float*, int32_t height, int32_t width, deeplab_logits* out) {
    auto* logits = static_cast<std::vector<float>*>(user);
    const int h = height / 8 + 1, w = width / 8 + 1;  // DeepLab's logits for the padded input
    logits->assign(static_cast<size_t>(2) * h * w, 1.0f);
    std::fill(logits->begin() + h * w, logits->end(), 0.0f);  // "background" wins everywhere
    *out = {logits->data(), 2, h, w};
    return 0;
}

}  // namespace

int main() {
    const int h = 17, w = 23;
    std::vector<std::uint8_t> image(static_cast<size_t>(h) * w * 3, 128), labels;
    deeplab::SegmenterOptions options;
    options.crf_iterations = 2;
    deeplab::Segmenter cpp(deeplab::ModelMeta::from_json(kMeta), std::make_unique<Constant>(), options);
    cpp.segment({image.data(), h, w, 0}, labels);
    for (auto l : labels)
        if (l != 1) return std::puts("C++ API: wrong label"), 1;

    std::vector<float> logits;
    deeplab_segmenter* s = nullptr;
    if (deeplab_create_from_provider(kMeta, provide, &logits, nullptr, &s) != DEEPLAB_OK)
        return std::printf("create: %s\n", deeplab_last_error()), 1;
    std::vector<std::uint8_t> out(static_cast<size_t>(h) * w, 7);
    const deeplab_status st = deeplab_apply(s, image.data(), h, w, 0, out.data(), out.size(), nullptr, 0);
    deeplab_destroy(s);
    if (st != DEEPLAB_OK) return std::printf("apply: %s\n", deeplab_last_error()), 1;
    for (auto l : out)
        if (l != 0) return std::puts("C API: wrong label"), 1;
    std::printf("consumer OK: deeplab-deploy %s (%s)\n", deeplab_version(), deeplab_build_features());
    return 0;
}
