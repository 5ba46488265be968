#include <cstring>
#include <stdexcept>

#include "crf/crf.hpp"
#include "deeplab/error.hpp"
#include "stages.hpp"

namespace deeplab {

struct CrfStage::Impl {
  crf::RefineParams params = crf::RefineParams::voc();
  int threads = 0;
  bool warm_start = false;
  std::vector<std::uint8_t> packed;  // the image without row padding, as the CRF reads it
  std::vector<float> previous;       // the last frame's result (warm start)
  int prev_h = 0, prev_w = 0, prev_c = 0;
};

CrfStage::CrfStage(int iterations, int threads, bool warm_start) : impl_(std::make_unique<Impl>()) {
  impl_->params.iterations = iterations;
  impl_->threads = threads;
  impl_->warm_start = warm_start;
}

CrfStage::~CrfStage() = default;

void CrfStage::reset() { impl_->previous.clear(); }

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
    crf::set_num_threads(s.threads);
    const bool warm = s.warm_start && s.params.iterations > 0 && s.prev_h == h && s.prev_w == w && s.prev_c == channels && !s.previous.empty();
    if (!warm) {
      crf::refine(pixels, w, h, probs.data(), channels, s.params, probs.data());
    } else {
      // The unary comes from this frame; mean field starts from the previous frame's result.
      const crf::RefineParams& p = s.params;
      crf::DenseCRF2D model(w, h, channels);
      model.set_unary_from_probabilities(probs.data(), p.clip);
      model.add_pairwise_gaussian(p.gaussian_sxy, p.gaussian_sxy, crf::Compatibility::potts(p.gaussian_weight),
                                  crf::KernelType::Diag, p.normalization);
      model.add_pairwise_bilateral(p.bilateral_sxy, p.bilateral_sxy, p.bilateral_srgb, p.bilateral_srgb,
                                   p.bilateral_srgb, pixels, crf::Compatibility::potts(p.bilateral_weight),
                                   crf::KernelType::Diag, p.normalization);
      probs.swap(s.previous);
      for (int i = 0; i < p.iterations; ++i) model.step_inference(probs.data());
    }
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
