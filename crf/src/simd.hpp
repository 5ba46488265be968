// Portable 4-lane float vectors (GCC/Clang vector extensions: SSE on x86-64, NEON on aarch64, scalar
// code elsewhere) and the helpers the CRF kernels share. Rows of values are padded to multiples of 4.
#pragma once

#include <cstdint>
#include <cstring>
#include <type_traits>

#if !defined(__GNUC__) && !defined(__clang__)
#error "deeplab_crf needs GCC or Clang (vector extensions)"
#endif

namespace deeplab::crf::detail {

typedef float v4f __attribute__((vector_size(16)));
typedef std::int32_t v4i __attribute__((vector_size(16)));

inline v4f load4(const float* p) {
    v4f v;
    std::memcpy(&v, p, sizeof v);
    return v;
}
inline void store4(float* p, v4f v) { std::memcpy(p, &v, sizeof v); }
inline v4f splat4(float x) { return v4f{x, x, x, x}; }
inline v4f select4(v4i mask, v4f a, v4f b) { return (v4f)(((v4i)a & mask) | ((v4i)b & ~mask)); }
inline v4f max4(v4f a, v4f b) { return select4(a > b, a, b); }
inline float hmax4(v4f a) {
    const float x = a[0] > a[1] ? a[0] : a[1], y = a[2] > a[3] ? a[2] : a[3];
    return x > y ? x : y;
}
inline float hsum4(v4f a) { return (a[0] + a[1]) + (a[2] + a[3]); }

// exp(x) for x <= 0 (softmax after subtracting the max): Cephes polynomial, ~2 ulp; 0 below -87.
inline v4f exp4_nonpositive(v4f x) {
    const v4f lo = splat4(-87.f);
    const v4i under = x < lo;
    const v4f xc = select4(under, lo, x);
    const v4f magic = splat4(12582912.f);  // 1.5 * 2^23: adding it rounds to an integer
    const v4f n = (xc * 1.44269504088896341f + magic) - magic;
    v4f r = xc - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    v4f p = splat4(1.9875691500e-4f);
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.f;
    const v4i bits = (__builtin_convertvector(n, v4i) + 127) << 23;
    const v4f y = p * (v4f)bits;
    return (v4f)((v4i)y & ~under);
}

// Row strides (padded label counts, multiples of 4) with a compile-time specialisation of the number
// of 4-lane vectors per row; 0 means "runtime count".
template <class F>
void dispatch_vectors(int stride, F&& f) {
    switch (stride / 4) {
        case 1: f(std::integral_constant<int, 1>{}); break;
        case 2: f(std::integral_constant<int, 2>{}); break;
        case 3: f(std::integral_constant<int, 3>{}); break;
        case 4: f(std::integral_constant<int, 4>{}); break;
        case 5: f(std::integral_constant<int, 5>{}); break;
        case 6: f(std::integral_constant<int, 6>{}); break;
        case 7: f(std::integral_constant<int, 7>{}); break;
        case 8: f(std::integral_constant<int, 8>{}); break;
        case 10: f(std::integral_constant<int, 10>{}); break;
        case 12: f(std::integral_constant<int, 12>{}); break;
        case 16: f(std::integral_constant<int, 16>{}); break;
        default: f(std::integral_constant<int, 0>{}); break;
    }
}

// Padded row length for n values: a multiple of 4.
inline int padded_stride(int n) { return (n + 3) / 4 * 4; }

}  // namespace deeplab::crf::detail
