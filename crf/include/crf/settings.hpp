// CRF settings resolved once, for both runtimes (the Python one through the crf module's binding): what a caller asks
// for, a model's own settings (its metadata's extra.crf) and whether the frames are a video's give the settings in
// force. The preset table, the model-default rule and the video rule live here and nowhere else.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "crf/crf.hpp"

namespace deeplab::crf {

/// The preset names preset() knows, sorted.
std::vector<std::string> preset_names();
/// The preset called `name` ("voc", "pydensecrf"); std::invalid_argument naming the known ones otherwise.
RefineParams preset(const std::string& name);

/// RefineParams fields by name (iterations, gaussian_sxy, gaussian_weight, bilateral_sxy, bilateral_srgb,
/// bilateral_weight, normalization, clip, scale, half_rows: 0 or 1).
using CrfOverrides = std::map<std::string, double>;

/// What a caller asks for.
struct CrfRequest {
    std::string preset = "default";  ///< "default": the model's own settings if it has any, else "voc"
    CrfOverrides overrides;          ///< fields the caller overrides (after the preset's and the model's)
    int iterations = -1;             ///< mean-field iterations; -1: the preset's
    float scale = 0.f;               ///< CRF resolution in (0, 1]; 0: the preset's
    bool warm_start = false;         ///< on a stream, each frame's CRF starts from the previous frame's result
    std::string device = "auto";     ///< auto | cpu | cuda
};

/// A model's own settings (its metadata's extra.crf): a preset name ("": voc) and fields it overrides.
struct ModelCrf {
    std::string preset;
    CrfOverrides overrides;
};

/// The settings in force. params() is what the CRF runs with: the preset, then `overrides`, then `iterations` and
/// `scale` where set.
struct CrfConfig {
    std::string preset = "voc";
    CrfOverrides overrides;
    int iterations = -1;  ///< -1: the preset's (after overrides)
    float scale = 0.f;    ///< 0: the preset's (after overrides)
    bool warm_start = false;
    std::string device = "auto";

    /// The validated parameters; std::invalid_argument naming the first bad setting.
    RefineParams params() const;
};

/// The settings for `request` on a model with its own settings `model`. "default" takes the model's preset and
/// overrides (else voc). On the frames of a video (`video`), unless iterations, a scale or warm start were asked
/// for, the CRF is RefineParams::video's: fewer iterations at a reduced resolution. Throws std::invalid_argument for
/// an unknown preset, setting or device, or a bad value.
CrfConfig resolve_crf(const CrfRequest& request, const ModelCrf& model, bool video);

}  // namespace deeplab::crf
