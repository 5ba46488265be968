#include "deeplab/segmenter.hpp"

#include <chrono>
#include <cstring>
#include <string>

#include "deeplab/error.hpp"
#include "deeplab/preprocess.hpp"
#include "engine_provider.hpp"
#include "stages.hpp"

namespace deeplab {
namespace {

using Clock = std::chrono::steady_clock;
double ms_between(Clock::time_point a, Clock::time_point b) {
    return std::chrono::duration<double, std::milli>(b - a).count();
}

void check_logits(const LogitsView& l, const ModelMeta& meta, const Padding& pad) {
    if (l.data == nullptr) throw Error(ErrorCode::provider, "the logits provider returned no data");
    if (l.channels != meta.n_classes())
        throw Error(ErrorCode::provider, "the logits have " + std::to_string(l.channels) +
                                             " channels but the model has " + std::to_string(meta.n_classes()) +
                                             " classes");
    const auto [h, w] = logits_size(pad.padded_height, pad.padded_width, meta.output_stride);
    if (l.height != h || l.width != w)
        throw Error(ErrorCode::provider, "the logits are " + std::to_string(l.height) + "×" + std::to_string(l.width) +
                                             " but the model gives " + std::to_string(h) + "×" + std::to_string(w) +
                                             " for a " + std::to_string(pad.padded_height) + "×" +
                                             std::to_string(pad.padded_width) +
                                             " input (logits computed for another input size?)");
}

// The CRF stage for `o`, its settings resolved once.
CrfStage make_crf_stage(const ModelMeta& meta, const SegmenterOptions& o) {
    if (!o.crf) return CrfStage(crf::RefineParams{}, o.threads, o.warm_start);
    return CrfStage(crf_params(meta, o), o.threads, o.warm_start);
}

}  // namespace

struct Segmenter::Impl {
    ModelMeta meta;
    std::unique_ptr<LogitsProvider> provider;
    SegmenterOptions options;
    StageTimes times;
    CrfStage crf;
    GpuUpsample gpu;
    std::vector<float> input;
    std::vector<float> probs;

    Impl(ModelMeta m, std::unique_ptr<LogitsProvider> p, SegmenterOptions o)
        : meta(std::move(m)), provider(std::move(p)), options(o), crf(make_crf_stage(meta, o)) {}
};

Segmenter::Segmenter(ModelMeta meta, std::unique_ptr<LogitsProvider> provider, SegmenterOptions options) {
    meta.validate();
    if (!provider) throw Error(ErrorCode::invalid_argument, "the logits provider is NULL");
    if (meta.n_classes() > 256)
        throw Error(ErrorCode::unsupported,
                    "labels are 8-bit: the model has " + std::to_string(meta.n_classes()) + " classes (at most 256)");
    if (options.crf_iterations < -1)
        throw Error(ErrorCode::invalid_argument,
                    "crf iterations must be >= 0 (or -1: the preset's), got " + std::to_string(options.crf_iterations));
    if (options.threads < 0)
        throw Error(ErrorCode::invalid_argument, "threads must be >= 0, got " + std::to_string(options.threads));
    impl_ = std::make_unique<Impl>(std::move(meta), std::move(provider), options);
}

Segmenter Segmenter::from_engine(const std::string& engine_path, SegmenterOptions options, int device) {
    OpenedEngine e = open_engine(engine_path, device);
    return Segmenter(std::move(e.meta), std::move(e.provider), options);
}

Segmenter::Segmenter(Segmenter&&) noexcept = default;
Segmenter& Segmenter::operator=(Segmenter&&) noexcept = default;
Segmenter::~Segmenter() = default;

const ModelMeta& Segmenter::meta() const {
    return impl_->meta;
}
const SegmenterOptions& Segmenter::options() const {
    return impl_->options;
}
const StageTimes& Segmenter::last_times() const {
    return impl_->times;
}
void Segmenter::reset() {
    impl_->crf.reset();
}

void Segmenter::segment(const ImageView& image, std::uint8_t* labels, float* probs_out) {
    if (labels == nullptr) throw Error(ErrorCode::invalid_argument, "the labels buffer is NULL");
    Impl& s = *impl_;
    StageTimes t;
    const auto t0 = Clock::now();
    check_image(image);
    const auto [ph, pw] = padded_size(image.height, image.width, s.meta.output_stride);
    const Padding pad = preprocess(image, s.meta, s.input, s.provider->input_size(ph, pw));
    const auto t1 = Clock::now();
    const LogitsView logits = s.provider->infer(s.input.data(), pad.padded_height, pad.padded_width);
    check_logits(logits, s.meta, pad);
    const auto t2 = Clock::now();
    auto t3 = t2, t4 = t2;
    const bool gpu = s.gpu.usable(logits);
    if (!s.options.crf && probs_out == nullptr) {  // labels straight from the logits, as the Python Segmenter does
        if (gpu)
            s.gpu.labels(logits, pad, s.meta.align_corners, labels);
        else
            upsample_labels(logits, pad, s.meta.align_corners, s.options.threads, labels);
        t3 = t4 = Clock::now();
    } else {
        if (gpu)
            s.gpu.softmax(logits, pad, s.meta.align_corners, s.probs);
        else
            upsample_softmax(logits, pad, s.meta.align_corners, s.options.threads, s.probs);
        t3 = Clock::now();
        if (s.options.crf) s.crf.refine(image, s.meta.n_classes(), s.probs);
        t4 = Clock::now();
        argmax_labels(s.probs.data(), s.meta.n_classes(), image.height, image.width, labels);
        if (probs_out != nullptr) std::memcpy(probs_out, s.probs.data(), s.probs.size() * sizeof(float));
    }
    const auto t5 = Clock::now();
    t.preprocess_ms = ms_between(t0, t1);
    t.infer_ms = ms_between(t1, t2);
    t.upsample_ms = ms_between(t2, t3);
    t.crf_ms = ms_between(t3, t4);
    t.total_ms = ms_between(t0, t5);
    s.times = t;
}

void Segmenter::segment(const ImageView& image, std::vector<std::uint8_t>& labels, std::vector<float>* probs) {
    check_image(image);
    const std::size_t pixels = static_cast<std::size_t>(image.height) * image.width;
    labels.resize(pixels);
    if (probs) probs->resize(pixels * impl_->meta.n_classes());
    segment(image, labels.data(), probs ? probs->data() : nullptr);
}

}  // namespace deeplab
