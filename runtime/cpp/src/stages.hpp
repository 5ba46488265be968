// The post-network stages, on top of deeplab::upsample and deeplab::crf.
#pragma once

#include <memory>
#include <vector>

#include "crf/crf.hpp"
#include "deeplab/image.hpp"
#include "deeplab/model_meta.hpp"
#include "deeplab/preprocess.hpp"
#include "deeplab/segmenter.hpp"
#include "deeplab/upsample.hpp"

namespace deeplab {

/// The upsampling geometry of one frame: logits covering the padded input, output cropped to the real image.
UpsampleShape upsample_shape(const LogitsView& logits, const Padding& padding);

/// Logits (covering the padded input) -> softmax probabilities of the real image, C×H×W: bilinear upsampling to the
/// padded size with the model's align_corners convention, cropped to (padding.height, padding.width).
void upsample_softmax(const LogitsView& logits, const Padding& padding, bool align_corners, int threads,
                      std::vector<float>& probs);

/// Labels straight from the logits (argmax of the upsampled logits), for when the CRF is off and no probabilities
/// are wanted (the Python Segmenter's `labels` stage).
void upsample_labels(const LogitsView& logits, const Padding& padding, bool align_corners, int threads,
                     std::uint8_t* labels);

/// The CRF parameters for `options` on a model (crf::resolve_crf over the model's extra.crf: the rule the Python
/// runtime resolves with too). Throws Error(invalid_argument) for an unknown preset or setting, or a bad value.
crf::RefineParams crf_params(const ModelMeta& meta, const SegmenterOptions& options);

/// The dense CRF; keeps the previous frame's result for warm starts.
class CrfStage {
  public:
    CrfStage(const crf::RefineParams& params, int threads, bool warm_start);
    ~CrfStage();
    /// Refine probs (C×H×W, in place) of `image`.
    void refine(const ImageView& image, int channels, std::vector<float>& probs);
    void reset();

  private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

/// Upsampling on the GPU for logits already in device memory (builds with CUDA; TensorRT providers): probabilities
/// or labels are computed on the device and copied back. Buffers are kept across frames.
class GpuUpsample {
  public:
    GpuUpsample();
    ~GpuUpsample();
    /// Whether `logits` can be upsampled on the GPU: compiled with CUDA, the logits are on a device, and the kernels
    /// have an image for it (probed once; when they have none, a warning on stderr and false from then on).
    bool usable(const LogitsView& logits);
    void softmax(const LogitsView& logits, const Padding& padding, bool align_corners, std::vector<float>& probs);
    void labels(const LogitsView& logits, const Padding& padding, bool align_corners, std::uint8_t* labels);

  private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

/// Per pixel, the first class with the highest probability (numpy's argmax).
void argmax_labels(const float* probs, int channels, int height, int width, std::uint8_t* labels);

}  // namespace deeplab
