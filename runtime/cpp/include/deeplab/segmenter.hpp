// The whole chain for one frame or a stream: preprocess -> logits (engine or provider) -> upsample + softmax -> CRF.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "deeplab/image.hpp"
#include "deeplab/model_meta.hpp"

namespace deeplab {

/// Runs the network: preprocessed 1×3×height×width float32 in (height, width multiples of the output stride),
/// logits out. The returned memory stays valid until the next call or the provider's destruction.
class LogitsProvider {
  public:
    virtual ~LogitsProvider() = default;
    virtual LogitsView infer(const float* input, int height, int width) = 0;
    /// The input size for an image padded to (height, width) multiples of the stride; an engine whose profile needs
    /// larger inputs says so here (the image is padded further and outputs are cropped back).
    virtual std::pair<int, int> input_size(int height, int width) const { return {height, width}; }
};

/// The CRF settings asked for (the Python Segmenter's crf, crf_iterations, crf_scale, warm_start, video,
/// crf_device); resolved once, at construction, by the rule both runtimes share (crf::resolve_crf).
struct SegmenterOptions {
    bool crf = true;  ///< refine with the dense CRF
    /// "default": the model's own settings (metadata extra.crf) if it has any, else "voc" (DeepLab v2 on VOC:
    /// 10 iterations, w=3 σ=1 smoothness, w=4 σxy=67 σrgb=3 appearance); or "voc", "pydensecrf".
    std::string crf_preset = "default";
    int crf_iterations = -1;  ///< mean-field iterations; -1: the preset's
    float crf_scale = 0.f;    ///< CRF resolution in (0, 1]; 0: the preset's (1)
    int threads = 0;          ///< CPU threads for upsampling and the CRF; 0 = all cores (the CRF stage keeps to its
                              ///< own count; upsampling's is process-wide: give every Segmenter the same value)
    bool warm_start = false;  ///< a frame's CRF starts from the previous frame's result (same-size frames)
    /// frames of one video: unless crf_iterations, crf_scale or warm_start are given, the CRF is
    /// crf::RefineParams::video()'s (fewer iterations at reduced resolution)
    bool video = false;
    std::string crf_device = "auto";  ///< auto | cpu (this build's CRF runs on the CPU; cuda is an error)
};

/// Wall time of each stage of the last segment() call, in milliseconds.
struct StageTimes {
    double preprocess_ms = 0, infer_ms = 0, upsample_ms = 0, crf_ms = 0, total_ms = 0;
};

/// Not thread-safe: use one Segmenter per thread (they share nothing), or serialize calls.
class Segmenter {
  public:
    Segmenter(ModelMeta meta, std::unique_ptr<LogitsProvider> provider, SegmenterOptions options = {});
    /// A TensorRT engine and its sidecar `<engine>.json`, checked against the running TensorRT and GPU first.
    /// Throws Error(unsupported) when this build has no TensorRT.
    static Segmenter from_engine(const std::string& engine_path, SegmenterOptions options = {}, int device = 0);

    Segmenter(Segmenter&&) noexcept;
    Segmenter& operator=(Segmenter&&) noexcept;
    ~Segmenter();

    const ModelMeta& meta() const;
    const SegmenterOptions& options() const;
    const StageTimes& last_times() const;

    /// Segment one BGR image: labels (height*width, row-major) and optionally probabilities
    /// (n_classes*height*width, class-major) into caller-owned buffers. Throws deeplab::Error.
    void segment(const ImageView& image, std::uint8_t* labels, float* probs = nullptr);
    /// The same, into vectors (resized as needed; probs left empty when null).
    void segment(const ImageView& image, std::vector<std::uint8_t>& labels, std::vector<float>* probs = nullptr);

    /// Forget the previous frame (warm start): call between unrelated streams.
    void reset();

  private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace deeplab
