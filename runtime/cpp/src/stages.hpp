// The post-network stages, on top of deeplab::upsample and deeplab::crf.
#pragma once

#include <memory>
#include <vector>

#include "deeplab/image.hpp"
#include "deeplab/preprocess.hpp"

namespace deeplab {

/// Logits (covering the padded input) -> softmax probabilities of the real image, C×H×W: bilinear upsampling to the
/// padded size with the model's align_corners convention, cropped to (padding.height, padding.width).
void upsample_softmax(const LogitsView& logits, const Padding& padding, bool align_corners, int threads,
                      std::vector<float>& probs);

/// The dense CRF with the DeepLab v2 VOC preset; keeps the previous frame's result for warm starts.
class CrfStage {
 public:
  CrfStage(int iterations, int threads, bool warm_start);
  ~CrfStage();
  /// Refine probs (C×H×W, in place) of `image`.
  void refine(const ImageView& image, int channels, std::vector<float>& probs);
  void reset();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// Per pixel, the first class with the highest probability (numpy's argmax).
void argmax_labels(const float* probs, int channels, int height, int width, std::uint8_t* labels);

}  // namespace deeplab
