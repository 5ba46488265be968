#include "filter_rules.hpp"

#include <algorithm>
#include <cmath>

#include "kernels.hpp"

namespace deeplab::crf::detail {

int gaussian_radius(float sigma) {
    return static_cast<int>(std::ceil(3.0 * sigma - 1e-6));
}

bool image_space_gaussian(float sx, float sy, Normalization normalization) {
    const auto small = [](float s) { return s > 0.f && gaussian_radius(s) <= kMaxImageRadius; };
    return normalization != Normalization::None && small(sx) && small(sy);
}

GaussianAxis gaussian_axis(float sigma, int size, Normalization normalization) {
    GaussianAxis a;
    const int radius = a.radius = gaussian_radius(sigma);
    a.taps.resize(2 * radius + 1);
    for (int d = -radius; d <= radius; ++d)
        a.taps[radius + d] = static_cast<float>(std::exp(-0.5 * d * d / (static_cast<double>(sigma) * sigma)));
    a.pre.assign(size, 1.f);
    a.post.assign(size, 1.f);
    for (int x = 0; x < size; ++x) {
        double sum = 0.0;
        for (int d = std::max(-radius, -x); d <= std::min(radius, size - 1 - x); ++d) sum += a.taps[radius + d];
        if (normalization == Normalization::Symmetric)
            a.pre[x] = a.post[x] = static_cast<float>(1.0 / std::sqrt(sum));
        else if (normalization == Normalization::Before)
            a.pre[x] = static_cast<float>(1.0 / sum);
        else if (normalization == Normalization::After)
            a.post[x] = static_cast<float>(1.0 / sum);
    }
    return a;
}

AreaTaps area_taps(int n, int m) {
    AreaTaps t;
    t.start.push_back(0);
    const double step = static_cast<double>(n) / m;
    for (int i = 0; i < m; ++i) {
        const double lo = i * step, hi = (i + 1) * step;
        for (int j = static_cast<int>(lo); j < n && j < hi; ++j) {
            const double overlap = std::min(hi, j + 1.0) - std::max(lo, static_cast<double>(j));
            if (overlap <= 1e-9) continue;
            t.source.push_back(j);
            t.weight.push_back(static_cast<float>(overlap / step));
        }
        t.start.push_back(static_cast<int>(t.source.size()));
    }
    return t;
}

BilinearAxis bilinear_axis(int n_out, int n_in) {
    BilinearAxis a;
    a.i0.resize(n_out);
    a.i1.resize(n_out);
    a.t.resize(n_out);
    for (int i = 0; i < n_out; ++i) {
        const float x = std::clamp((i + 0.5f) * (static_cast<float>(n_in) / n_out) - 0.5f, 0.f, n_in - 1.f);
        a.i0[i] = static_cast<int>(x);
        a.i1[i] = std::min(a.i0[i] + 1, n_in - 1);
        a.t[i] = x - a.i0[i];
    }
    return a;
}

int reduced_size(float scale, int size) {
    return std::max(1, static_cast<int>(std::lround(scale * size)));
}

}  // namespace deeplab::crf::detail
