// RefineParams from the flat fields Python passes (crf.refinement.refine_params), for both extension modules.
#pragma once

#include "crf/crf.hpp"

namespace deeplab::crf {

inline RefineParams params_from(int iterations, float gaussian_sxy, float gaussian_weight, float bilateral_sxy,
                                float bilateral_srgb, float bilateral_weight, int normalization, float clip,
                                float scale, bool half_rows) {
    RefineParams p;
    p.iterations = iterations;
    p.gaussian_sxy = gaussian_sxy;
    p.gaussian_weight = gaussian_weight;
    p.bilateral_sxy = bilateral_sxy;
    p.bilateral_srgb = bilateral_srgb;
    p.bilateral_weight = bilateral_weight;
    p.normalization = static_cast<Normalization>(normalization);
    p.clip = clip;
    p.scale = scale;
    p.half_rows = half_rows;
    p.validate();
    return p;
}

}  // namespace deeplab::crf
