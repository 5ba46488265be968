// CPU bilinear upsampling fused with softmax/argmax. Output rows are split over threads. Separable evaluation in
// PyTorch's operation order, out = l0_y·(l0_x·a + l1_x·b) + l1_y·(l0_x·c + l1_x·d): each thread interpolates a source
// row horizontally once (for every channel) and keeps the last two such rows, since consecutive output rows share
// them; each output row is then a contiguous blend of two cached rows, written straight into the output and
// normalized in place. Scratch per thread: 2·C·width floats for the cache, 2·width for the softmax/argmax.
#include "deeplab/upsample.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstddef>
#include <limits>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace deeplab {
namespace {

std::atomic<int> g_threads{0};

struct Tap {
    int i0, i1;
    float l0, l1;
};

// PyTorch's area_pixel_compute_scale / area_pixel_compute_source_index / guard_index_and_lambda, in float
// (identical to bilinear_tap() in runtime/kernels/bilinear_softmax.cu).
Tap bilinear_tap(int dst, int in_size, int out_size, bool align_corners) {
    if (in_size == out_size) return {dst, dst, 1.0f, 0.0f};
    float src;
    if (align_corners) {
        const float scale = out_size > 1 ? static_cast<float>(in_size - 1) / static_cast<float>(out_size - 1) : 0.0f;
        src = scale * static_cast<float>(dst);
    } else {
        const float scale = static_cast<float>(in_size) / static_cast<float>(out_size);
        // PyTorch's compiled kernel contracts this to one fused multiply-add: do the same, to the last bit.
        src = std::max(std::fma(scale, static_cast<float>(dst) + 0.5f, -0.5f), 0.0f);
    }
    const int i0 = std::min(static_cast<int>(std::floor(src)), in_size - 1);
    const float l1 = std::min(std::max(src - static_cast<float>(i0), 0.0f), 1.0f);
    return {i0, i0 + (i0 < in_size - 1 ? 1 : 0), 1.0f - l1, l1};
}

// Per-thread scratch: the two most recent horizontally interpolated source rows (all channels), plus 2 rows of work.
struct Scratch {
    std::vector<float> rows;  // [slot][channel][col]
    std::vector<float> work;  // 2 × cols
    int source_row[2] = {-1, -1};
    int image = -1;
};

struct Plan {
    UpsampleShape s;
    std::vector<Tap> taps_x;
    std::vector<Tap> taps_y;
    std::ptrdiff_t in_plane, cols, plane_cols;  // in_h·in_w, output cols, c·cols (one cache slot)

    Plan(const UpsampleShape& shape, bool ac) : s(shape) {
        validate(s);
        taps_x.resize(s.cols());
        taps_y.resize(s.rows());
        for (int x = 0; x < s.cols(); ++x) taps_x[x] = bilinear_tap(x, s.in_w, s.out_w, ac);
        for (int y = 0; y < s.rows(); ++y) taps_y[y] = bilinear_tap(y, s.in_h, s.out_h, ac);
        in_plane = static_cast<std::ptrdiff_t>(s.in_h) * s.in_w;
        cols = s.cols();
        plane_cols = static_cast<std::ptrdiff_t>(s.c) * cols;
    }

    Scratch scratch() const {
        Scratch sc;
        sc.rows.resize(2 * static_cast<std::size_t>(plane_cols));
        sc.work.resize(2 * static_cast<std::size_t>(cols));
        return sc;
    }

    // The cache slot holding source row r of image n (interpolated horizontally), filling a slot other than `keep`'s.
    int slot(const float* in, int n, int r, int keep, Scratch& sc) const {
        if (sc.source_row[0] == r) return 0;
        if (sc.source_row[1] == r) return 1;
        const int k = sc.source_row[0] == keep ? 1 : 0;
        float* dst = sc.rows.data() + k * plane_cols;
        const float* src =
            in + static_cast<std::ptrdiff_t>(n) * s.c * in_plane + static_cast<std::ptrdiff_t>(r) * s.in_w;
        for (int c = 0; c < s.c; ++c, src += in_plane, dst += cols) {
            for (std::ptrdiff_t x = 0; x < cols; ++x) {
                const Tap t = taps_x[x];
                dst[x] = t.l0 * src[t.i0] + t.l1 * src[t.i1];
            }
        }
        sc.source_row[k] = r;
        return k;
    }

    // Output row y of image n: calls emit(c, a, b, l0, l1) per channel with the two interpolated source rows.
    template <typename Emit>
    void row(const float* in, int n, int y, Scratch& sc, Emit emit) const {
        if (sc.image != n) sc.source_row[0] = sc.source_row[1] = -1, sc.image = n;
        const Tap ty = taps_y[y];
        const int s0 = slot(in, n, ty.i0, ty.i1, sc);
        const int s1 = slot(in, n, ty.i1, ty.i0, sc);
        const float* a = sc.rows.data() + s0 * plane_cols;
        const float* b = sc.rows.data() + s1 * plane_cols;
        for (int c = 0; c < s.c; ++c) emit(c, a + c * cols, b + c * cols, ty.l0, ty.l1);
    }
};

inline void blend(const float* a, const float* b, float l0, float l1, float* dst, std::ptrdiff_t cols) {
    for (std::ptrdiff_t x = 0; x < cols; ++x) dst[x] = l0 * a[x] + l1 * b[x];
}

// Runs body(n, y, scratch) for every output row, each thread taking a contiguous range of rows.
template <typename Body>
void for_rows(const Plan& plan, Body body) {
    const long long total = static_cast<long long>(plan.s.n) * plan.s.rows();
    const long long work = total * plan.s.cols() * plan.s.c;
    int threads = g_threads.load();
    if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    // Below ~64k multiply-adds per thread, starting threads costs more than it saves.
    threads = static_cast<int>(std::max(1LL, std::min<long long>({threads, total, work / 65536 + 1})));
    auto run = [&](long long begin, long long end) {
        Scratch scratch = plan.scratch();
        for (long long r = begin; r < end; ++r)
            body(static_cast<int>(r / plan.s.rows()), static_cast<int>(r % plan.s.rows()), scratch);
    };
    if (threads == 1) return run(0, total);
    std::vector<std::thread> pool;
    pool.reserve(threads - 1);
    const long long chunk = (total + threads - 1) / threads;
    for (int t = 1; t < threads; ++t) {
        const long long b = std::min(total, t * chunk), e = std::min(total, (t + 1) * chunk);
        if (b < e) pool.emplace_back(run, b, e);
    }
    run(0, std::min(total, chunk));
    for (auto& th : pool) th.join();
}

template <typename Label>
void argmax_impl(const float* in, Label* labels, const UpsampleShape& shape, bool align_corners) {
    const Plan plan(shape, align_corners);
    if (plan.s.c > static_cast<long long>(std::numeric_limits<Label>::max()) + 1)
        throw std::invalid_argument("too many classes (" + std::to_string(plan.s.c) + ") for the label type");
    const std::ptrdiff_t cols = plan.cols;
    for_rows(plan, [&](int n, int y, Scratch& sc) {
        float* best = sc.work.data();
        float* value = best + cols;
        Label* out = labels + (static_cast<std::ptrdiff_t>(n) * plan.s.rows() + y) * cols;
        plan.row(in, n, y, sc, [&](int c, const float* a, const float* b, float l0, float l1) {
            if (c == 0) {
                blend(a, b, l0, l1, best, cols);
                std::fill(out, out + cols, Label(0));
                return;
            }
            blend(a, b, l0, l1, value, cols);
            for (std::ptrdiff_t x = 0; x < cols; ++x) {
                if (value[x] > best[x]) {
                    best[x] = value[x];
                    out[x] = static_cast<Label>(c);
                }
            }
        });
    });
}

}  // namespace

void validate(const UpsampleShape& s) {
    if (s.n < 1 || s.c < 1 || s.in_h < 1 || s.in_w < 1 || s.out_h < 1 || s.out_w < 1)
        throw std::invalid_argument("upsample: sizes must be positive");
    if (s.crop_h < 0 || s.crop_w < 0 || s.crop_h > s.out_h || s.crop_w > s.out_w)
        throw std::invalid_argument("upsample: the crop must lie inside the output size");
}

void set_num_threads(int threads) {
    g_threads.store(std::max(0, threads));
}

int num_threads() {
    const int t = g_threads.load();
    return t > 0 ? t : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

void bilinear(const float* in, float* out, const UpsampleShape& shape, bool align_corners) {
    const Plan plan(shape, align_corners);
    const std::ptrdiff_t out_plane = static_cast<std::ptrdiff_t>(plan.s.rows()) * plan.cols;
    for_rows(plan, [&](int n, int y, Scratch& sc) {
        float* dst = out + static_cast<std::ptrdiff_t>(n) * plan.s.c * out_plane + y * plan.cols;
        plan.row(in, n, y, sc, [&](int c, const float* a, const float* b, float l0, float l1) {
            blend(a, b, l0, l1, dst + c * out_plane, plan.cols);
        });
    });
}

void bilinear_softmax(const float* in, float* out, const UpsampleShape& shape, bool align_corners) {
    const Plan plan(shape, align_corners);
    const std::ptrdiff_t cols = plan.cols;
    const std::ptrdiff_t out_plane = static_cast<std::ptrdiff_t>(plan.s.rows()) * cols;
    for_rows(plan, [&](int n, int y, Scratch& sc) {
        float* vmax = sc.work.data();
        float* sum = vmax + cols;
        float* dst = out + static_cast<std::ptrdiff_t>(n) * plan.s.c * out_plane + y * cols;
        std::fill(vmax, vmax + cols, -std::numeric_limits<float>::infinity());
        std::fill(sum, sum + cols, 0.0f);
        plan.row(in, n, y, sc, [&](int c, const float* a, const float* b, float l0, float l1) {
            float* d = dst + c * out_plane;
            blend(a, b, l0, l1, d, cols);
            for (std::ptrdiff_t x = 0; x < cols; ++x) vmax[x] = std::max(vmax[x], d[x]);
        });
        for (int c = 0; c < plan.s.c; ++c) {
            float* d = dst + c * out_plane;
            for (std::ptrdiff_t x = 0; x < cols; ++x) {
                d[x] = std::exp(d[x] - vmax[x]);
                sum[x] += d[x];
            }
        }
        for (std::ptrdiff_t x = 0; x < cols; ++x) sum[x] = 1.0f / sum[x];
        for (int c = 0; c < plan.s.c; ++c) {
            float* d = dst + c * out_plane;
            for (std::ptrdiff_t x = 0; x < cols; ++x) d[x] *= sum[x];
        }
    });
}

void bilinear_argmax(const float* in, std::uint8_t* labels, const UpsampleShape& shape, bool align_corners) {
    argmax_impl(in, labels, shape, align_corners);
}

void bilinear_argmax(const float* in, std::int32_t* labels, const UpsampleShape& shape, bool align_corners) {
    argmax_impl(in, labels, shape, align_corners);
}

}  // namespace deeplab
