#include <cstring>
#include <stdexcept>
#include <string>

#include "crf/crf.hpp"
#include "crf/settings.hpp"
#include "deeplab/error.hpp"
#include "stages.hpp"

namespace deeplab {

crf::RefineParams crf_params(const ModelMeta& meta, const SegmenterOptions& o) {
    crf::CrfRequest request;
    request.preset = o.crf_preset;
    request.iterations = o.crf_iterations;
    request.scale = o.crf_scale;
    request.warm_start = o.warm_start;
    request.device = o.crf_device;
    try {
        const crf::CrfConfig c = crf::resolve_crf(request, crf::ModelCrf{meta.crf_preset, meta.crf_overrides}, o.video);
        if (c.device == "cuda")
            throw Error(ErrorCode::unsupported,
                        "the dense CRF runs on the CPU in this build; use crf_device auto or cpu");
        return c.params();
    } catch (const std::invalid_argument& e) {
        throw Error(ErrorCode::invalid_argument, e.what());
    }
}

struct CrfStage::Impl {
    crf::RefineParams params;
    int threads = 0;
    bool warm_start = false;
    std::vector<std::uint8_t> packed;  // the image without row padding, as the CRF reads it
    std::vector<float> previous;       // the last frame's result (warm start)
    crf::LatticeCache lattices{1};     // this stage's frames share one geometry
    int prev_h = 0, prev_w = 0, prev_c = 0;
};

CrfStage::CrfStage(const crf::RefineParams& params, int threads, bool warm_start) : impl_(std::make_unique<Impl>()) {
    impl_->params = params;
    impl_->threads = threads;
    impl_->warm_start = warm_start;
}

CrfStage::~CrfStage() = default;

void CrfStage::reset() {
    impl_->previous.clear();
}

void CrfStage::refine(const ImageView& image, int channels, std::vector<float>& probs) {
    Impl& s = *impl_;
    const int h = image.height, w = image.width;
    const std::uint8_t* pixels = image.data;
    const std::size_t row = static_cast<std::size_t>(w) * 3;
    if (image.stride() != row) {
        s.packed.resize(row * h);
        for (int y = 0; y < h; ++y) std::memcpy(s.packed.data() + y * row, image.data + y * image.stride(), row);
        pixels = s.packed.data();
    }
    try {
        const bool warm = s.warm_start && s.params.iterations > 0 && s.prev_h == h && s.prev_w == w &&
                          s.prev_c == channels && !s.previous.empty();
        crf::RefineOptions options;
        // The unary comes from this frame; with a warm start, mean field starts from the previous frame's result.
        options.init = warm ? s.previous.data() : nullptr;
        options.cache = &s.lattices;
        options.threads = s.threads;
        crf::refine(pixels, w, h, probs.data(), channels, s.params, probs.data(), options);
    } catch (const crf::OutOfMemory& e) {
        throw Error(ErrorCode::out_of_memory, std::string("dense CRF: ") + e.what());
    } catch (const std::invalid_argument& e) {
        throw Error(ErrorCode::invalid_argument, std::string("dense CRF: ") + e.what());
    } catch (const std::overflow_error& e) {
        throw Error(ErrorCode::invalid_argument, std::string("dense CRF: ") + e.what());
    }
    if (s.warm_start) {
        s.previous = probs;
        s.prev_h = h;
        s.prev_w = w;
        s.prev_c = channels;
    }
}

}  // namespace deeplab
