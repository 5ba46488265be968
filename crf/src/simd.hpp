// Portable helpers for loops the compiler vectorises (SSE/AVX on x86-64, NEON on aarch64).
#pragma once

#include <cstdint>
#include <cstring>
#include <type_traits>

namespace deeplab::crf::detail {

// Row strides (padded label counts) with a compile-time specialisation; 0 means "runtime stride".
template <class F>
void dispatch_stride(int stride, F&& f) {
    switch (stride) {
        case 4: f(std::integral_constant<int, 4>{}); break;
        case 8: f(std::integral_constant<int, 8>{}); break;
        case 16: f(std::integral_constant<int, 16>{}); break;
        case 24: f(std::integral_constant<int, 24>{}); break;
        case 32: f(std::integral_constant<int, 32>{}); break;
        case 40: f(std::integral_constant<int, 40>{}); break;
        case 48: f(std::integral_constant<int, 48>{}); break;
        case 64: f(std::integral_constant<int, 64>{}); break;
        default: f(std::integral_constant<int, 0>{}); break;
    }
}

// Padded row length for n values: 4 for tiny label sets, else a multiple of 8 (two NEON / one AVX vector).
inline int padded_stride(int n) { return n <= 4 ? 4 : (n + 7) / 8 * 8; }

// exp(x) for x <= 0 as used by the softmax (Cephes polynomial, ~2 ulp); returns 0 below -87.
inline float exp_nonpositive(float x) {
    const float xc = x < -87.f ? -87.f : x;
    // n = round(x / ln 2) with the 1.5 * 2^23 trick (vectorises without SSE4.1's roundps).
    const float magic = 12582912.f;
    const float n = (xc * 1.44269504088896341f + magic) - magic;
    float r = xc - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.f;
    const std::int32_t bits = (static_cast<std::int32_t>(n) + 127) << 23;
    float scale;
    std::memcpy(&scale, &bits, sizeof scale);
    const float y = p * scale;
    return x < -87.f ? 0.f : y;
}

}  // namespace deeplab::crf::detail
