// The per-iteration kernels (splat, blur, fused slice + compatibility + softmax), written once over a
// vector width W with GCC/Clang vector extensions. kernels_generic.cpp instantiates them for 4 lanes
// (SSE2 / NEON / scalar), kernels_avx2.cpp for 8 lanes (compiled with -mavx2 -mfma -mf16c, used only when
// the CPU has them). Rows are padded to multiples of W floats.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "crf/permutohedral.hpp"

#if !defined(__GNUC__) && !defined(__clang__)
#error "deeplab_crf needs GCC or Clang (vector extensions)"
#endif

// Half-precision vertex rows need one instruction per vector to convert: F16C (the AVX2 unit) or
// AArch64's Advanced SIMD. Elsewhere (the SSE2 kernels) vertex rows stay in float.
#if defined(DEEPLAB_CRF_KERNELS_IMPL) && defined(__F16C__) && defined(__AVX2__)
#include <immintrin.h>
#define DEEPLAB_CRF_HALF_WIDTH 8
#elif defined(DEEPLAB_CRF_KERNELS_IMPL) && defined(__aarch64__)
#include <arm_neon.h>
#define DEEPLAB_CRF_HALF_WIDTH 4
#endif

namespace deeplab::crf::detail {

using SplatEntry = Permutohedral::SplatEntry;
using Half = std::uint16_t;  // IEEE binary16 bits

// The horizontal half of an image-space Gaussian term: the slice of pixel (x, y) is
// post_x[x] post_y[y] sum_d taps[radius + d] values[(x + d, y)], d within the row.
struct ImageView {
    int width;  // 0: not an image-space term
    int radius;
    const float* taps;  // 2 radius + 1
    const float* post_x;
    const float* post_y;
};

// One pairwise term as the fused pass sees it.
struct TermView {
    const std::int32_t* offsets;  // n x (dim + 1) vertex ids (lattice terms)
    const float* slice_w;         // n x (dim + 1) slice weights (Potts weight folded in)
    const float* values;          // lattice terms: blurred vertex values, m x stride; image terms: n x stride
    const Half* half_values;      // lattice terms with half rows: m x pitch, read instead of values
    int pitch;                    // halves per vertex row
    const float* compat;          // Diagonal: stride values; Matrix: labels x stride; Potts: null
    int dp1;
    int kind;  // 0 Potts, 1 Diagonal, 2 Matrix
    ImageView image;
};

// The vertical half of an image-space Gaussian term, for image rows [y0, y1):
// out(x, y) = pre_x[x] sum_d taps[radius + d] pre_y[y + d] in(x, y + d), d within the image.
struct ColumnFilter {
    const float* in;
    float* out;
    int width, height, radius;
    const float* taps;
    const float* pre_x;
    const float* pre_y;
};

// A grid lattice (Permutohedral::Grid) as the sweep sees it: its shape, vertex cells per row, and the splat lists by
// cell.
struct GridView {
    int rows, cols, parity0;
    const std::int32_t* row_begin;
    const std::int32_t* row_end;
    const SplatEntry* entries;
    const std::int32_t* begin;  // cell c sums entries [begin[c], begin[c + 1])
};
// Rows of workspace one grid sweep needs (times cols x pitch values): the splat, axis-0 and axis-1 rows in flight.
constexpr int kGridWorkRows = 12;

struct FusedArgs {
    const float* neg_unary;  // n x stride
    const TermView* terms;
    int n_terms;
    int labels, stride;
};

// Entry points of one instruction-set variant.
struct Kernels {
    int width;  // floats per vector; strides must be multiples of it
    // Vertex rows [lo, hi) of the splat (Permutohedral::splat_entries, splat_begin) of `in` (n x stride).
    void (*splat)(const SplatEntry* entries, const std::int32_t* begin, std::int64_t lo, std::int64_t hi,
                  const float* in, float* values, int stride);
    void (*blur)(const std::int32_t* order, std::int64_t lo, std::int64_t hi, float* values, int stride);
    // The splat and the blur on half-precision vertex rows of `pitch` halves (sums in float, rounded to nearest
    // once per row); null where the CPU has no vector conversions.
    void (*splat_half)(const SplatEntry* entries, const std::int32_t* begin, std::int64_t lo, std::int64_t hi,
                       const float* in, Half* values, int stride, int pitch);
    void (*blur_half)(const std::int32_t* order, std::int64_t lo, std::int64_t hi, Half* values, int stride, int pitch);
    // Grid lattice rows [r0, r1) of splat + blur into `values` (rows x cols rows of `pitch` values), with
    // kGridWorkRows x cols x pitch values of workspace; the half variant is null where the CPU has no conversions.
    void (*grid_filter)(const GridView& g, int r0, int r1, const float* in, float* values, int stride, float* work);
    void (*grid_filter_half)(const GridView& g, int r0, int r1, const float* in, Half* values, int stride, int pitch,
                             Half* work);
    void (*column_filter)(const ColumnFilter& f, int y0, int y1, int stride);
    // softmax(-U - pairwise) into q_out rows [lo, hi); with_pairwise = false gives softmax(-U).
    void (*softmax)(const FusedArgs& a, std::int64_t lo, std::int64_t hi, float* q_out, bool with_pairwise);
    // sum over rows [lo, hi) of sum_l q (log q - e), e = -U - pairwise (the KL divergence up to log Z).
    double (*kl)(const FusedArgs& a, std::int64_t lo, std::int64_t hi, const float* q);
    // x[i] = log(min(max(x[i], lo), 1)) for i < count (a multiple of the width); lo > 0.
    void (*log_clipped)(float* x, std::int64_t count, float lo);
    // x[i] = exp(min(x[i] - shift, 0)) for i < count (a multiple of the width).
    void (*exp_below)(float* x, std::int64_t count, float shift);
};

constexpr int kMaxStride = 4096;    // labels per row (bounded so row buffers live on the stack)
constexpr int kMaxImageRadius = 4;  // image-space Gaussians: sigma <= 4/3 (taps out to 3 sigma)

const Kernels& generic_kernels();
const Kernels* avx2_kernels();  // null where not compiled in
// The fastest variant usable for rows of `stride` floats on this CPU.
const Kernels& kernels_for(int stride);

#ifdef DEEPLAB_CRF_KERNELS_IMPL
// Everything below has internal linkage: each translation unit (each instruction set) keeps its own
// copy, so the linker can never hand AVX code to the generic path.
namespace {

#ifdef DEEPLAB_CRF_HALF_WIDTH
constexpr int kHalfWidth = DEEPLAB_CRF_HALF_WIDTH;
#else
constexpr int kHalfWidth = 0;
#endif

template <int W>
struct Vec {
    typedef float f __attribute__((vector_size(4 * W)));
    typedef std::int32_t i __attribute__((vector_size(4 * W)));
};

template <int W>
struct Ops {
    using vf = typename Vec<W>::f;
    using vi = typename Vec<W>::i;

    static vf load(const float* p) {
        vf v;
        std::memcpy(&v, p, sizeof v);
        return v;
    }
    static void store(float* p, vf v) { std::memcpy(p, &v, sizeof v); }
    // Broadcast (x - 0 is exactly x, -0 included); a lane-by-lane loop compiles to W inserts.
    static vf set1(float x) { return x - vf{}; }
    static vf select(vi mask, vf a, vf b) { return (vf)(((vi)a & mask) | ((vi)b & ~mask)); }
    static vf max(vf a, vf b) { return select(a > b, a, b); }
    static float hmax(vf a) {
        float m = a[0];
        for (int k = 1; k < W; ++k) m = a[k] > m ? a[k] : m;
        return m;
    }
    static float hsum(vf a) {
        float s = 0.f;
        for (int k = 0; k < W; ++k) s += a[k];
        return s;
    }
    // exp(x) for x <= 0 (after subtracting the max): Cephes polynomial, ~2 ulp; 0 below -87.
    static vf exp_nonpositive(vf x) {
        const vf lo = set1(-87.f);
        const vi under = x < lo;
        const vf xc = select(under, lo, x);
        const vf magic = set1(12582912.f);  // 1.5 * 2^23: adding it rounds to an integer
        const vf n = (xc * 1.44269504088896341f + magic) - magic;
        vf r = xc - n * 0.693359375f;
        r = r - n * -2.12194440e-4f;
        vf p = set1(1.9875691500e-4f);
        p = p * r + 1.3981999507e-3f;
        p = p * r + 8.3334519073e-3f;
        p = p * r + 4.1665795894e-2f;
        p = p * r + 1.6666665459e-1f;
        p = p * r + 5.0000001201e-1f;
        p = p * r * r + r + 1.f;
        const vi bits = (__builtin_convertvector(n, vi) + 127) << 23;
        const vf y = p * (vf)bits;
        return (vf)((vi)y & ~under);
    }
    // W halves (only in a translation unit with the conversions: kHalfWidth == W).
    static vf load(const Half* p) {
#if DEEPLAB_CRF_HALF_WIDTH == 8
        static_assert(W == 8);
        return (vf)_mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
#elif DEEPLAB_CRF_HALF_WIDTH == 4
        static_assert(W == 4);
        return (vf)vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(p)));
#else
        (void)p;
        return vf{};
#endif
    }
    static void store(Half* p, vf v) {
#if DEEPLAB_CRF_HALF_WIDTH == 8
        _mm_storeu_si128(reinterpret_cast<__m128i*>(p), _mm256_cvtps_ph((__m256)v, _MM_FROUND_TO_NEAREST_INT));
#elif DEEPLAB_CRF_HALF_WIDTH == 4
        vst1_u16(p, vreinterpret_u16_f16(vcvt_f16_f32((float32x4_t)v)));
#else
        (void)p;
        (void)v;
#endif
    }
};

// log(x) for normal x > 0 (Cephes logf polynomial, ~1 ulp).
template <int W>
typename Ops<W>::vf log_positive(typename Ops<W>::vf x) {
    using O = Ops<W>;
    using vf = typename O::vf;
    using vi = typename O::vi;
    const vi bits = (vi)x;
    vf e = __builtin_convertvector(((bits >> 23) & 0xff) - 126, vf);
    vf m = (vf)((bits & 0x807fffff) | 0x3f000000);  // mantissa in [0.5, 1)
    const vi small = m < 0.707106781186547524f;
    e = O::select(small, e - 1.f, e);
    m = O::select(small, m + m, m) - 1.f;
    const vf z = m * m;
    vf p = O::set1(7.0376836292e-2f);
    p = p * m - 1.1514610310e-1f;
    p = p * m + 1.1676998740e-1f;
    p = p * m - 1.2420140846e-1f;
    p = p * m + 1.4249322787e-1f;
    p = p * m - 1.6668057665e-1f;
    p = p * m + 2.0000714765e-1f;
    p = p * m - 2.4999993993e-1f;
    p = p * m + 3.3333331174e-1f;
    vf y = m * z * p;
    y = y + e * -2.12194440e-4f;
    y = y - z * 0.5f;
    return (m + y) + e * 0.693359375f;
}

// Calls f(integral_constant<KT>) for the number of vectors per row (0: runtime count).
template <class F>
void dispatch_row_vectors(int k, F&& f) {
    switch (k) {
        case 1:
            f(std::integral_constant<int, 1>{});
            break;
        case 2:
            f(std::integral_constant<int, 2>{});
            break;
        case 3:
            f(std::integral_constant<int, 3>{});
            break;
        case 4:
            f(std::integral_constant<int, 4>{});
            break;
        case 5:
            f(std::integral_constant<int, 5>{});
            break;
        case 6:
            f(std::integral_constant<int, 6>{});
            break;
        case 8:
            f(std::integral_constant<int, 8>{});
            break;
        default:
            f(std::integral_constant<int, 0>{});
            break;
    }
}

// Vertex rows [lo, hi) (`pitch` values of T apart): each the sum of its entries' weighted input rows, in entry
// order, stored once. T: float rows or Half rows. A vertex's points lie a few image rows apart, so the input rows
// are requested 32 entries ahead.
template <int W, int KT, class T>
void splat_rows(const SplatEntry* entries, const std::int32_t* begin, std::int64_t lo, std::int64_t hi, const float* in,
                T* values, int k_rt, int pitch) {
    using O = Ops<W>;
    using vf = typename O::vf;
    const int K = KT > 0 ? KT : k_rt;
    const std::int64_t S = static_cast<std::int64_t>(W) * K;
    vf acc[KT > 0 ? KT : kMaxStride / W];
    constexpr std::int32_t kAhead = 32;
    const std::int32_t end = begin[hi];
    for (std::int64_t v = lo; v < hi; ++v) {
        for (int k = 0; k < K; ++k) acc[k] = O::set1(0.f);
        for (std::int32_t e = begin[v]; e < begin[v + 1]; ++e) {
            if (e + kAhead < end) {
                const float* ahead = in + entries[e + kAhead].point * S;
                __builtin_prefetch(ahead);
                __builtin_prefetch(ahead + S - 1);
            }
            const float* x = in + entries[e].point * S;
            const vf w = O::set1(entries[e].weight);
            for (int k = 0; k < K; ++k) acc[k] = acc[k] + w * O::load(x + W * k);
        }
        T* row = values + v * pitch;
        for (int k = 0; k < K; ++k) O::store(row + W * k, acc[k]);
    }
}

inline std::int32_t chain_vertex(std::int32_t raw) {
    return raw < 0 ? ~raw : raw;
}

// new[v] = old[v] + 0.5 (old[pred] + old[succ]) along the chains of one axis, in place; the rows are
// scattered in memory, so they are prefetched a few chain steps ahead.
// T: float rows (pitch = stride) or Half rows.
template <int W, int KT, class T>
void blur_rows(const std::int32_t* order, std::int64_t lo, std::int64_t hi, T* values, int k_rt, int pitch) {
    using O = Ops<W>;
    using vf = typename O::vf;
    const int K = KT > 0 ? KT : k_rt;
    const std::int64_t S = pitch;
    constexpr std::int64_t kLine = 64 / sizeof(T);
    vf prev[KT > 0 ? KT : kMaxStride / W];
    const vf zero = O::set1(0.f), half = O::set1(0.5f);
    for (int k = 0; k < K; ++k) prev[k] = zero;
    constexpr std::int64_t kAhead = 32;
    for (std::int64_t pos = lo; pos < hi; ++pos) {
        if (pos + kAhead < hi) {
            const T* ahead = values + static_cast<std::int64_t>(chain_vertex(order[pos + kAhead])) * S;
            for (std::int64_t b = 0; b < W * K; b += kLine) __builtin_prefetch(ahead + b, 1);
        }
        const std::int32_t raw = order[pos];
        T* row = values + static_cast<std::int64_t>(chain_vertex(raw)) * S;
        if (raw < 0) {  // end of a chain: no successor
            for (int k = 0; k < K; ++k) {
                O::store(row + W * k, O::load(row + W * k) + half * (prev[k] + zero));
                prev[k] = zero;
            }
        } else {
            const T* next = values + static_cast<std::int64_t>(chain_vertex(order[pos + 1])) * S;
            for (int k = 0; k < K; ++k) {
                const vf cur = O::load(row + W * k);
                O::store(row + W * k, cur + half * (prev[k] + O::load(next + W * k)));
                prev[k] = cur;
            }
        }
    }
}

// One grid row of the splat: every cell (vertex or not: a cell without entries gets zero) sums its entries' rows.
template <int W, int KT, class T>
void grid_splat_row(const GridView& g, int r, const float* in, T* out, int K, int pitch) {
    using O = Ops<W>;
    using vf = typename O::vf;
    const std::int64_t S = static_cast<std::int64_t>(W) * K;
    vf acc[KT > 0 ? KT : kMaxStride / W];
    const std::int32_t* begin = g.begin + static_cast<std::int64_t>(r) * g.cols;
    constexpr std::int32_t kAhead = 16;
    const std::int32_t end = begin[g.cols];
    for (int c = 0; c < g.cols; ++c) {
        for (int k = 0; k < K; ++k) acc[k] = O::set1(0.f);
        for (std::int32_t e = begin[c]; e < begin[c + 1]; ++e) {
            if (e + kAhead < end) __builtin_prefetch(in + g.entries[e + kAhead].point * S);
            const float* x = in + g.entries[e].point * S;
            const vf w = O::set1(g.entries[e].weight);
            for (int k = 0; k < K; ++k) acc[k] = acc[k] + w * O::load(x + W * k);
        }
        T* row = out + static_cast<std::int64_t>(c) * pitch;
        for (int k = 0; k < K; ++k) O::store(row + W * k, acc[k]);
    }
}

// One grid row of one axis of the blur: out[c] = cur[c] + 0.5 (up[c + du] + down[c + dd]) for the row's vertex cells
// (a neighbour outside the grid, or a row that is null, is zero, as a missing vertex is), zero elsewhere.
template <int W, int KT, class T>
void grid_blur_row(const GridView& g, int r, const T* cur, const T* up, int du, const T* down, int dd, T* out, int K,
                   int pitch) {
    using O = Ops<W>;
    using vf = typename O::vf;
    const vf zero = O::set1(0.f), half = O::set1(0.5f);
    const int lo = g.row_begin[r], hi = g.row_end[r];
    const auto clear = [&](int c0, int c1) {
        for (int c = c0; c < c1; ++c)
            for (int k = 0; k < K; ++k) O::store(out + static_cast<std::int64_t>(c) * pitch + W * k, zero);
    };
    clear(0, lo);
    const auto cell = [&](int c) {
        const int cu = c + du, cd = c + dd;
        const T* u = up && cu >= 0 && cu < g.cols ? up + static_cast<std::int64_t>(cu) * pitch : nullptr;
        const T* d = down && cd >= 0 && cd < g.cols ? down + static_cast<std::int64_t>(cd) * pitch : nullptr;
        const T* x = cur + static_cast<std::int64_t>(c) * pitch;
        T* o = out + static_cast<std::int64_t>(c) * pitch;
        for (int k = 0; k < K; ++k) {
            const vf a = u ? O::load(u + W * k) : zero, b = d ? O::load(d + W * k) : zero;
            O::store(o + W * k, O::load(x + W * k) + half * (a + b));
        }
    };
    // Interior cells (both neighbours' columns inside the grid, both rows present) without the checks.
    const int a = up && down ? std::min(std::max(lo, 1), hi) : hi,
              b = up && down ? std::max(std::min(hi, g.cols - 1), a) : hi;
    for (int c = lo; c < a; ++c) cell(c);
    for (int c = a; c < b; ++c) {
        const T* u = up + static_cast<std::int64_t>(c + du) * pitch;
        const T* d = down + static_cast<std::int64_t>(c + dd) * pitch;
        const T* x = cur + static_cast<std::int64_t>(c) * pitch;
        T* o = out + static_cast<std::int64_t>(c) * pitch;
        for (int k = 0; k < K; ++k)
            O::store(o + W * k, O::load(x + W * k) + half * (O::load(u + W * k) + O::load(d + W * k)));
    }
    for (int c = b; c < hi; ++c) cell(c);
    clear(hi, g.cols);
}

// Grid rows [r0, r1) of splat + blur, as one sweep: at step t the splat makes row t, axis 0 row t - 1, axis 1 row t - 2
// and axis 2 (whose neighbours are two rows away) row t - 4, into `values`. The rows a band needs beyond its own are
// made again in its workspace (rings of 4, 3 and 5 rows), so bands are independent and any split gives the same bits.
template <int W, int KT, class T>
void grid_rows(const GridView& g, int r0, int r1, const float* in, T* values, int k_rt, int pitch, T* work) {
    const int K = KT > 0 ? KT : k_rt;
    const std::int64_t row = static_cast<std::int64_t>(g.cols) * pitch;
    const auto ring = [&](int first, int size, int r) { return work + (first + ((r % size) + size) % size) * row; };
    const auto splat_row = [&](int r) { return ring(0, 4, r); };
    const auto axis0_row = [&](int r) { return ring(4, 3, r); };
    const auto axis1_row = [&](int r) { return ring(7, 5, r); };
    const int R = g.rows;
    const auto parity = [&](int r) { return (r + g.parity0) & 1; };
    const auto inside = [&](int r, int lo, int hi) { return r >= 0 && r < R && r >= lo && r < hi; };
    for (int t = r0 - 4; t < r1 + 4; ++t) {
        if (inside(t, r0 - 4, r1 + 4)) grid_splat_row<W, KT>(g, t, in, splat_row(t), K, pitch);
        if (const int r = t - 1; inside(r, r0 - 3, r1 + 3)) {
            const int p = parity(r);
            grid_blur_row<W, KT>(g, r, splat_row(r), inside(r - 1, r0 - 4, r1 + 4) ? splat_row(r - 1) : nullptr, p,
                                 r + 1 < R ? splat_row(r + 1) : nullptr, p - 1, axis0_row(r), K, pitch);
        }
        if (const int r = t - 2; inside(r, r0 - 2, r1 + 2)) {
            const int p = parity(r);
            grid_blur_row<W, KT>(g, r, axis0_row(r), r >= 1 ? axis0_row(r - 1) : nullptr, p - 1,
                                 r + 1 < R ? axis0_row(r + 1) : nullptr, p, axis1_row(r), K, pitch);
        }
        if (const int r = t - 4; inside(r, r0, r1))
            grid_blur_row<W, KT>(g, r, axis1_row(r), r >= 2 ? axis1_row(r - 2) : nullptr, 0,
                                 r + 2 < R ? axis1_row(r + 2) : nullptr, 0, values + r * row, K, pitch);
    }
}

template <int W, int KT>
void column_rows(const ColumnFilter& f, int y0, int y1, int k_rt) {
    using O = Ops<W>;
    using vf = typename O::vf;
    const int K = KT > 0 ? KT : k_rt;
    const std::int64_t S = static_cast<std::int64_t>(W) * K, row = f.width * S;
    vf acc[KT > 0 ? KT : kMaxStride / W];
    vf coef[2 * kMaxImageRadius + 1];
    for (int y = y0; y < y1; ++y) {
        const int lo = y < f.radius ? -y : -f.radius;
        const int hi = f.height - 1 - y < f.radius ? f.height - 1 - y : f.radius;
        for (int d = lo; d <= hi; ++d) coef[d - lo] = O::set1(f.taps[f.radius + d] * f.pre_y[y + d]);
        const float* top = f.in + (y + lo) * row;
        float* out = f.out + y * row;
        for (int x = 0; x < f.width; ++x) {
            const float* src = top + x * S;
            for (int k = 0; k < K; ++k) acc[k] = coef[0] * O::load(src + W * k);
            for (int d = 1; d <= hi - lo; ++d)
                for (int k = 0; k < K; ++k) acc[k] += coef[d] * O::load(src + d * row + W * k);
            const vf px = O::set1(f.pre_x[x]);
            for (int k = 0; k < K; ++k) O::store(out + x * S + W * k, px * acc[k]);
        }
    }
}

// e = -U - sum_k compat_k(slice_k) for one row, into e[0..K).
template <int W, int KT>
inline void energy_row(const FusedArgs& a, std::int64_t i, typename Ops<W>::vf* e, typename Ops<W>::vf* s, float* lanes,
                       int K, bool with_pairwise) {
    using O = Ops<W>;
    const std::int64_t S = static_cast<std::int64_t>(W) * K;
    const float* nu = a.neg_unary + i * S;
    for (int k = 0; k < K; ++k) e[k] = O::load(nu + W * k);
    if (!with_pairwise) return;
    for (int t = 0; t < a.n_terms; ++t) {
        const TermView& tv = a.terms[t];
        typename O::vf* acc = tv.kind == 0 ? e : s;  // Potts: weight folded into w, adds straight to e
        if (tv.kind != 0)
            for (int k = 0; k < K; ++k) s[k] = O::set1(0.f);
        if (tv.image.width > 0) {
            const ImageView& im = tv.image;
            const int x = static_cast<int>(i % im.width);
            const float post = im.post_x[x] * im.post_y[i / im.width];
            const int lo = x < im.radius ? -x : -im.radius;
            const int hi = im.width - 1 - x < im.radius ? im.width - 1 - x : im.radius;
            const float* center = tv.values + i * S;
            for (int d = lo; d <= hi; ++d) {
                const typename O::vf wd = O::set1(post * im.taps[im.radius + d]);
                for (int k = 0; k < K; ++k) acc[k] += wd * O::load(center + d * S + W * k);
            }
        } else {
            const std::int32_t* off = tv.offsets + i * tv.dp1;
            const float* w = tv.slice_w + i * tv.dp1;
            const auto gather = [&](const auto* rows, std::int64_t pitch) {
                for (int r = 0; r < tv.dp1; ++r) {
                    const typename O::vf wr = O::set1(w[r]);
                    const auto* src = rows + static_cast<std::int64_t>(off[r]) * pitch;
                    for (int k = 0; k < K; ++k) acc[k] += wr * O::load(src + W * k);
                }
            };
            if (tv.half_values)
                gather(tv.half_values, tv.pitch);
            else
                gather(tv.values, S);
        }
        if (tv.kind == 1) {
            for (int k = 0; k < K; ++k) e[k] -= O::load(tv.compat + W * k) * s[k];
        } else if (tv.kind == 2) {
            float* ef = lanes;
            float* sf = lanes + S;
            for (int k = 0; k < K; ++k) {
                O::store(ef + W * k, e[k]);
                O::store(sf + W * k, s[k]);
            }
            for (int l = 0; l < a.labels; ++l) {
                const float* row = tv.compat + l * S;
                float dot = 0.f;
                for (int c = 0; c < a.labels; ++c) dot += row[c] * sf[c];
                ef[l] -= dot;
            }
            for (int k = 0; k < K; ++k) e[k] = O::load(ef + W * k);
        }
    }
}

// Half-precision vertex rows are one cache line each: the rows that pixel i gathers are requested a few pixels
// ahead (3-5 % faster on 2 threads, docs/crf.md; with float rows, two lines each, it gained nothing measurable).
inline void prefetch_half_rows(const FusedArgs& a, std::int64_t i) {
    for (int t = 0; t < a.n_terms; ++t) {
        const TermView& tv = a.terms[t];
        if (!tv.half_values) continue;
        const std::int32_t* off = tv.offsets + i * tv.dp1;
        for (int r = 0; r < tv.dp1; ++r)
            __builtin_prefetch(tv.half_values + static_cast<std::int64_t>(off[r]) * tv.pitch);
    }
}

template <int W, int KT>
void softmax_rows(const FusedArgs& a, std::int64_t lo, std::int64_t hi, float* q_out, bool with_pairwise) {
    using O = Ops<W>;
    using vf = typename O::vf;
    const int K = KT > 0 ? KT : a.stride / W;
    const std::int64_t S = static_cast<std::int64_t>(W) * K;
    constexpr int kVec = KT > 0 ? KT : kMaxStride / W;
    vf e[kVec], s[kVec];
    float lanes[2 * kVec * W];
    constexpr std::int64_t kAhead = 4;  // pixels
    for (std::int64_t i = lo; i < hi; ++i) {
        if (with_pairwise && i + kAhead < hi) prefetch_half_rows(a, i + kAhead);
        energy_row<W, KT>(a, i, e, s, lanes, K, with_pairwise);
        vf mx = e[0];
        for (int k = 1; k < K; ++k) mx = O::max(mx, e[k]);
        const vf m = O::set1(O::hmax(mx));
        vf sum = O::set1(0.f);
        for (int k = 0; k < K; ++k) {
            e[k] = O::exp_nonpositive(e[k] - m);
            sum += e[k];
        }
        const vf inv = O::set1(1.f / O::hsum(sum));
        float* qo = q_out + i * S;
        for (int k = 0; k < K; ++k) O::store(qo + W * k, e[k] * inv);
    }
}

template <int W, int KT>
double kl_rows(const FusedArgs& a, std::int64_t lo, std::int64_t hi, const float* q) {
    using vf = typename Ops<W>::vf;
    const int K = KT > 0 ? KT : a.stride / W;
    const std::int64_t S = static_cast<std::int64_t>(W) * K;
    constexpr int kVec = KT > 0 ? KT : kMaxStride / W;
    vf e[kVec], s[kVec];
    float lanes[2 * kVec * W];
    double kl = 0.0;
    for (std::int64_t i = lo; i < hi; ++i) {
        energy_row<W, KT>(a, i, e, s, lanes, K, true);
        for (int k = 0; k < K; ++k) Ops<W>::store(lanes + W * k, e[k]);
        const float* qi = q + i * S;
        for (int l = 0; l < a.labels; ++l)
            kl += static_cast<double>(qi[l]) *
                  (std::log(qi[l] > 1e-20f ? qi[l] : 1e-20f) - static_cast<double>(lanes[l]));
    }
    return kl;
}

// The Kernels table for width W (defined in the translation unit compiled for that width).
template <int W>
Kernels make_kernels() {
    Kernels k;
    k.width = W;
    k.splat = [](const SplatEntry* entries, const std::int32_t* begin, std::int64_t lo, std::int64_t hi,
                 const float* in, float* values, int stride) {
        dispatch_row_vectors(stride / W, [&](auto kt) {
            splat_rows<W, decltype(kt)::value>(entries, begin, lo, hi, in, values, stride / W, stride);
        });
    };
    k.blur = [](const std::int32_t* order, std::int64_t lo, std::int64_t hi, float* values, int stride) {
        dispatch_row_vectors(
            stride / W, [&](auto kt) { blur_rows<W, decltype(kt)::value>(order, lo, hi, values, stride / W, stride); });
    };
    k.splat_half = nullptr;
    k.blur_half = nullptr;
    if constexpr (W == kHalfWidth) {
        k.splat_half = [](const SplatEntry* entries, const std::int32_t* begin, std::int64_t lo, std::int64_t hi,
                          const float* in, Half* values, int stride, int pitch) {
            dispatch_row_vectors(stride / W, [&](auto kt) {
                splat_rows<W, decltype(kt)::value>(entries, begin, lo, hi, in, values, stride / W, pitch);
            });
        };
        k.blur_half = [](const std::int32_t* order, std::int64_t lo, std::int64_t hi, Half* values, int stride,
                         int pitch) {
            dispatch_row_vectors(stride / W, [&](auto kt) {
                blur_rows<W, decltype(kt)::value>(order, lo, hi, values, stride / W, pitch);
            });
        };
    }
    k.grid_filter = [](const GridView& g, int r0, int r1, const float* in, float* values, int stride, float* work) {
        dispatch_row_vectors(stride / W, [&](auto kt) {
            grid_rows<W, decltype(kt)::value>(g, r0, r1, in, values, stride / W, stride, work);
        });
    };
    k.grid_filter_half = nullptr;
    if constexpr (W == kHalfWidth)
        k.grid_filter_half = [](const GridView& g, int r0, int r1, const float* in, Half* values, int stride, int pitch,
                                Half* work) {
            dispatch_row_vectors(stride / W, [&](auto kt) {
                grid_rows<W, decltype(kt)::value>(g, r0, r1, in, values, stride / W, pitch, work);
            });
        };
    k.column_filter = [](const ColumnFilter& f, int y0, int y1, int stride) {
        dispatch_row_vectors(stride / W, [&](auto kt) { column_rows<W, decltype(kt)::value>(f, y0, y1, stride / W); });
    };
    k.softmax = [](const FusedArgs& a, std::int64_t lo, std::int64_t hi, float* q_out, bool with_pairwise) {
        dispatch_row_vectors(a.stride / W,
                             [&](auto kt) { softmax_rows<W, decltype(kt)::value>(a, lo, hi, q_out, with_pairwise); });
    };
    k.log_clipped = [](float* x, std::int64_t count, float lo) {
        using O = Ops<W>;
        const typename O::vf vlo = O::set1(lo), one = O::set1(1.f);
        for (std::int64_t i = 0; i < count; i += W) {
            typename O::vf v = O::load(x + i);
            v = O::select(v < vlo, vlo, v);
            v = O::select(v > one, one, v);
            O::store(x + i, log_positive<W>(v));
        }
    };
    k.exp_below = [](float* x, std::int64_t count, float shift) {
        using O = Ops<W>;
        const typename O::vf s = O::set1(shift), zero = O::set1(0.f);
        for (std::int64_t i = 0; i < count; i += W) {
            const typename O::vf v = O::load(x + i) - s;
            O::store(x + i, O::exp_nonpositive(O::select(v > zero, zero, v)));
        }
    };
    k.kl = [](const FusedArgs& a, std::int64_t lo, std::int64_t hi, const float* q) {
        double r = 0.0;
        dispatch_row_vectors(a.stride / W, [&](auto kt) { r = kl_rows<W, decltype(kt)::value>(a, lo, hi, q); });
        return r;
    };
    return k;
}

}  // namespace
#endif  // DEEPLAB_CRF_KERNELS_IMPL

}  // namespace deeplab::crf::detail
