// Set-up rules shared by the CPU CRF (densecrf.cpp) and the GPU CRF (gpu/engine.inl): which smoothness Gaussians are
// filtered in image space and their taps and normalisation, the area-averaging taps and the bilinear upsampling of
// the reduced-resolution CRF. Defined once, so both compute the same tables.
#pragma once

#include <cstdint>
#include <vector>

#include "crf/crf.hpp"

namespace deeplab::crf::detail {

// Radius of the taps of a Gaussian with this sigma (in pixels): 3 sigma, rounded up.
int gaussian_radius(float sigma);
// Whether DenseCRF2D's GaussianFilter::Auto filters a Gaussian of these sigmas in image space (kMaxImageRadius).
bool image_space_gaussian(float sx, float sy, Normalization normalization);

// One axis of an image-space Gaussian: taps exp(-d^2 / 2 sigma^2), |d| <= radius, and per position the factors before
// (pre) and after (post) the filter that normalise it as `normalization` says, from the taps inside the image.
struct GaussianAxis {
    int radius = 0;
    std::vector<float> taps, pre, post;
};
GaussianAxis gaussian_axis(float sigma, int size, Normalization normalization);

// Area averaging of n cells down to m along one axis: output cell i covers [i n / m, (i + 1) n / m) and takes each
// source cell it overlaps with the overlap's share of its width (so cells keep evenly spaced centres, which the
// bilinear upsampling of the message assumes). Cell i's taps are [start[i], start[i + 1]).
struct AreaTaps {
    std::vector<int> start, source;
    std::vector<float> weight;
};
AreaTaps area_taps(int n, int m);

// Bilinear upsampling from n_in to n_out cells along one axis (align_corners = false, as the runtime's): output i
// is (1 - t[i]) in[i0[i]] + t[i] in[i1[i]].
struct BilinearAxis {
    std::vector<int> i0, i1;
    std::vector<float> t;
};
BilinearAxis bilinear_axis(int n_out, int n_in);

// The reduced CRF's size along an axis of `size` cells at RefineParams::scale `scale`.
int reduced_size(float scale, int size);

}  // namespace deeplab::crf::detail
