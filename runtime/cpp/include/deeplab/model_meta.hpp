// Model metadata: the C++ mirror of runtime/metadata.py (same JSON schema, same validation, same messages).
#pragma once

#include <array>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace deeplab {

inline constexpr int kMetaSchemaVersion = 1;

/// Everything between the raw image and the network, and between the network and labels:
/// pixel = (image[channel_order] - mean) * scale per channel, NCHW float32 in, logits at 1/output_stride out.
struct ModelMeta {
    std::vector<std::string> class_names;
    std::string channel_order = "BGR";
    std::array<float, 3> mean{104.008f, 116.669f, 122.675f};
    std::array<float, 3> scale{1.0f, 1.0f, 1.0f};
    int output_stride = 8;
    bool align_corners = false;
    std::string input_name = "image";
    std::string output_name = "logits";
    std::string precision = "fp32";
    bool msc = false;
    std::string source_sha256;
    /// extra["crf"]: the model's own CRF settings (what crf_preset "default" runs): a preset name ("voc", ...) and
    /// fields it overrides (iterations, gaussian_sxy, bilateral_srgb, scale, half_rows as 0/1, ...), checked when a
    /// Segmenter resolves them (crf::resolve_crf).
    std::string crf_preset;
    std::map<std::string, double> crf_overrides;

    int n_classes() const { return static_cast<int>(class_names.size()); }

    /// Parse ModelMeta.to_json() output; throws deeplab::Error(ErrorCode::metadata) with the Python runtime's message.
    static ModelMeta from_json(std::string_view text);
    /// Throw deeplab::Error(ErrorCode::metadata) unless every field is usable (ModelMeta.validate()).
    void validate() const;
};

}  // namespace deeplab
