#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>

#include "crf/crf.hpp"
#include "deeplab/error.hpp"
#include "stages.hpp"

namespace deeplab {

namespace {

[[noreturn]] void bad(const std::string& m) {
    throw Error(ErrorCode::invalid_argument, m);
}

std::string number(double v) {
    std::string s = std::to_string(v);
    s.erase(s.find_last_not_of('0') + 1);  // "3.500000" -> "3.5", "2.000000" -> "2."
    if (!s.empty() && s.back() == '.') s.pop_back();
    return s;
}

}  // namespace

crf::RefineParams crf_params(const ModelMeta& meta, const std::string& preset, int iterations) {
    const bool model_default = preset == "default";
    std::string name = model_default ? (meta.crf_preset.empty() ? "voc" : meta.crf_preset) : preset;
    crf::RefineParams p;
    if (name == "voc")
        p = crf::RefineParams::voc();
    else if (name == "pydensecrf")
        p = crf::RefineParams::pydensecrf();
    else
        bad("unknown CRF preset '" + name + "'; known: pydensecrf, voc");
    if (model_default) {
        for (const auto& [key, v] : meta.crf_overrides) {
            if (key == "iterations") {
                if (v != std::floor(v) || v < 0 || v > 1e6) bad("iterations must be an integer >= 0, got " + number(v));
                p.iterations = static_cast<int>(v);
            } else if (key == "gaussian_sxy")
                p.gaussian_sxy = static_cast<float>(v);
            else if (key == "gaussian_weight")
                p.gaussian_weight = static_cast<float>(v);
            else if (key == "bilateral_sxy")
                p.bilateral_sxy = static_cast<float>(v);
            else if (key == "bilateral_srgb")
                p.bilateral_srgb = static_cast<float>(v);
            else if (key == "bilateral_weight")
                p.bilateral_weight = static_cast<float>(v);
            else if (key == "normalization") {
                if (v != std::floor(v) || std::fabs(v) > 1e6) bad("normalization must be in [0, 3], got " + number(v));
                p.normalization = static_cast<crf::Normalization>(static_cast<int>(v));
            } else if (key == "clip")
                p.clip = static_cast<float>(v);
            else
                bad("unknown CRF setting '" + key + "' in the model's metadata (extra.crf)");
        }
    }
    if (iterations >= 0) p.iterations = iterations;
    try {
        p.validate();
    } catch (const std::invalid_argument& e) {
        bad(e.what());
    }
    return p;
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
