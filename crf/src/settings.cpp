#include "crf/settings.hpp"

#include <cmath>
#include <stdexcept>

namespace deeplab::crf {
namespace {

[[noreturn]] void bad(const std::string& m) {
    throw std::invalid_argument(m);
}

std::string number(double v) {
    if (std::isfinite(v) && v == std::floor(v) && std::fabs(v) < 1e15) return std::to_string(static_cast<long long>(v));
    std::string s = std::to_string(v);
    s.erase(s.find_last_not_of('0') + 1);
    return s;
}

int integer(const std::string& name, double v) {
    if (!std::isfinite(v) || v != std::floor(v) || std::fabs(v) > 1e6)
        bad(name + " must be an integer, got " + number(v));
    return static_cast<int>(v);
}

void apply(RefineParams& p, const std::string& key, double v) {
    if (key == "iterations")
        p.iterations = integer(key, v);
    else if (key == "gaussian_sxy")
        p.gaussian_sxy = static_cast<float>(v);
    else if (key == "gaussian_weight")
        p.gaussian_weight = static_cast<float>(v);
    else if (key == "bilateral_sxy")
        p.bilateral_sxy = static_cast<float>(v);
    else if (key == "bilateral_srgb")
        p.bilateral_srgb = static_cast<float>(v);
    else if (key == "bilateral_weight")
        p.bilateral_weight = static_cast<float>(v);
    else if (key == "normalization")
        p.normalization = static_cast<Normalization>(integer(key, v));
    else if (key == "clip")
        p.clip = static_cast<float>(v);
    else if (key == "scale")
        p.scale = static_cast<float>(v);
    else if (key == "half_rows") {
        if (v != 0 && v != 1) bad("half_rows must be a bool, got " + number(v));
        p.half_rows = v != 0;
    } else
        bad("unknown CRF setting '" + key +
            "'; known: bilateral_srgb, bilateral_sxy, bilateral_weight, clip, gaussian_sxy, gaussian_weight, "
            "half_rows, iterations, normalization, scale");
}

}  // namespace

std::vector<std::string> preset_names() {
    return {"pydensecrf", "voc"};
}

RefineParams preset(const std::string& name) {
    if (name == "voc") return RefineParams::voc();
    if (name == "pydensecrf") return RefineParams::pydensecrf();
    std::string known;
    for (const auto& n : preset_names()) known += (known.empty() ? "" : ", ") + n;
    bad("unknown CRF preset '" + name + "'; known: " + known);
}

RefineParams CrfConfig::params() const {
    RefineParams p = crf::preset(preset);
    for (const auto& [key, v] : overrides) apply(p, key, v);
    if (iterations >= 0) p.iterations = iterations;
    if (scale != 0.f) p.scale = scale;
    p.validate();
    return p;
}

CrfConfig resolve_crf(const CrfRequest& request, const ModelCrf& model, bool video) {
    if (request.device != "auto" && request.device != "cpu" && request.device != "cuda")
        bad("the CRF device must be auto, cpu or cuda, got '" + request.device + "'");
    if (request.iterations < -1) bad("iterations must be an integer >= 0, got " + std::to_string(request.iterations));
    if (request.scale != 0.f && !(request.scale > 0.f && request.scale <= 1.f))
        bad("scale must be in (0, 1], got " + number(request.scale));
    CrfConfig c;
    if (request.preset == "default") {
        c.preset = model.preset.empty() ? "voc" : model.preset;
        c.overrides = model.overrides;
    } else {
        c.preset = request.preset;
    }
    for (const auto& [key, v] : request.overrides) c.overrides[key] = v;
    c.iterations = request.iterations;
    c.scale = request.scale;
    c.warm_start = request.warm_start;
    c.device = request.device;
    const bool chosen = request.iterations >= 0 || request.scale != 0.f || request.warm_start ||
                        request.overrides.count("iterations") || request.overrides.count("scale");
    if (video && !chosen) {
        const RefineParams v = RefineParams::video(RefineParams{});
        c.iterations = v.iterations;
        c.scale = v.scale;
    }
    c.params();  // every setting checked now, not on the first frame
    return c;
}

}  // namespace deeplab::crf
