// CPU bilinear upsampling fused with softmax/argmax: rows of the output are split over threads; each row is computed
// for every channel straight into the output, then normalized in place, with O(width) scratch per thread.
#include "deeplab/upsample.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
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

struct Plan {
  UpsampleShape s;
  bool align_corners;
  std::vector<Tap> taps_x;
  std::vector<Tap> taps_y;

  Plan(const UpsampleShape& shape, bool ac) : s(shape), align_corners(ac) {
    validate(s);
    taps_x.resize(s.cols());
    taps_y.resize(s.rows());
    for (int x = 0; x < s.cols(); ++x) taps_x[x] = bilinear_tap(x, s.in_w, s.out_w, ac);
    for (int y = 0; y < s.rows(); ++y) taps_y[y] = bilinear_tap(y, s.in_h, s.out_h, ac);
  }

  // One output row of one channel: dst[x] for x < cols.
  void row(const float* plane, int y, float* dst) const {
    const Tap ty = taps_y[y];
    const float* r0 = plane + static_cast<std::ptrdiff_t>(ty.i0) * s.in_w;
    const float* r1 = plane + static_cast<std::ptrdiff_t>(ty.i1) * s.in_w;
    const int cols = s.cols();
    for (int x = 0; x < cols; ++x) {
      const Tap tx = taps_x[x];
      dst[x] = ty.l0 * (tx.l0 * r0[tx.i0] + tx.l1 * r0[tx.i1]) + ty.l1 * (tx.l0 * r1[tx.i0] + tx.l1 * r1[tx.i1]);
    }
  }
};

// Runs body(n, y, scratch) for every output row on the worker threads.
template <typename Body>
void for_rows(const Plan& plan, std::size_t scratch_floats, Body body) {
  const long long total = static_cast<long long>(plan.s.n) * plan.s.rows();
  const long long work = total * plan.s.cols() * plan.s.c;
  int threads = g_threads.load();
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  // Below ~64k multiply-adds per thread, starting threads costs more than it saves.
  threads = static_cast<int>(std::max(1LL, std::min<long long>({threads, total, work / 65536 + 1})));
  auto run = [&](long long begin, long long end) {
    std::vector<float> scratch(scratch_floats);
    for (long long r = begin; r < end; ++r)
      body(static_cast<int>(r / plan.s.rows()), static_cast<int>(r % plan.s.rows()), scratch.data());
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
  const int cols = plan.s.cols(), channels = plan.s.c;
  if (channels > static_cast<long long>(std::numeric_limits<Label>::max()) + 1)
    throw std::invalid_argument("too many classes (" + std::to_string(channels) + ") for the label type");
  const std::ptrdiff_t in_plane = static_cast<std::ptrdiff_t>(plan.s.in_h) * plan.s.in_w;
  for_rows(plan, 2 * static_cast<std::size_t>(cols), [&](int n, int y, float* scratch) {
    float* best = scratch;
    float* value = scratch + cols;
    Label* out = labels + (static_cast<std::ptrdiff_t>(n) * plan.s.rows() + y) * cols;
    const float* src = in + static_cast<std::ptrdiff_t>(n) * channels * in_plane;
    plan.row(src, y, best);
    std::fill(out, out + cols, Label(0));
    for (int c = 1; c < channels; ++c) {
      plan.row(src + c * in_plane, y, value);
      for (int x = 0; x < cols; ++x) {
        if (value[x] > best[x]) {
          best[x] = value[x];
          out[x] = static_cast<Label>(c);
        }
      }
    }
  });
}

}  // namespace

void validate(const UpsampleShape& s) {
  if (s.n < 1 || s.c < 1 || s.in_h < 1 || s.in_w < 1 || s.out_h < 1 || s.out_w < 1)
    throw std::invalid_argument("upsample: sizes must be positive");
  if (s.crop_h < 0 || s.crop_w < 0 || s.crop_h > s.out_h || s.crop_w > s.out_w)
    throw std::invalid_argument("upsample: the crop must lie inside the output size");
}

void set_num_threads(int threads) { g_threads.store(std::max(0, threads)); }

int num_threads() {
  const int t = g_threads.load();
  return t > 0 ? t : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

void bilinear(const float* in, float* out, const UpsampleShape& shape, bool align_corners) {
  const Plan plan(shape, align_corners);
  const std::ptrdiff_t in_plane = static_cast<std::ptrdiff_t>(plan.s.in_h) * plan.s.in_w;
  const std::ptrdiff_t out_plane = static_cast<std::ptrdiff_t>(plan.s.rows()) * plan.s.cols();
  for_rows(plan, 0, [&](int n, int y, float*) {
    for (int c = 0; c < plan.s.c; ++c) {
      const std::ptrdiff_t nc = static_cast<std::ptrdiff_t>(n) * plan.s.c + c;
      plan.row(in + nc * in_plane, y, out + nc * out_plane + static_cast<std::ptrdiff_t>(y) * plan.s.cols());
    }
  });
}

void bilinear_softmax(const float* in, float* out, const UpsampleShape& shape, bool align_corners) {
  const Plan plan(shape, align_corners);
  const int cols = plan.s.cols(), channels = plan.s.c;
  const std::ptrdiff_t in_plane = static_cast<std::ptrdiff_t>(plan.s.in_h) * plan.s.in_w;
  const std::ptrdiff_t out_plane = static_cast<std::ptrdiff_t>(plan.s.rows()) * cols;
  for_rows(plan, 2 * static_cast<std::size_t>(cols), [&](int n, int y, float* scratch) {
    float* vmax = scratch;
    float* sum = scratch + cols;
    const float* src = in + static_cast<std::ptrdiff_t>(n) * channels * in_plane;
    float* dst = out + static_cast<std::ptrdiff_t>(n) * channels * out_plane + static_cast<std::ptrdiff_t>(y) * cols;
    std::fill(vmax, vmax + cols, -std::numeric_limits<float>::infinity());
    std::fill(sum, sum + cols, 0.0f);
    for (int c = 0; c < channels; ++c) {
      float* d = dst + c * out_plane;
      plan.row(src + c * in_plane, y, d);
      for (int x = 0; x < cols; ++x) vmax[x] = std::max(vmax[x], d[x]);
    }
    for (int c = 0; c < channels; ++c) {
      float* d = dst + c * out_plane;
      for (int x = 0; x < cols; ++x) {
        d[x] = std::exp(d[x] - vmax[x]);
        sum[x] += d[x];
      }
    }
    for (int x = 0; x < cols; ++x) sum[x] = 1.0f / sum[x];
    for (int c = 0; c < channels; ++c) {
      float* d = dst + c * out_plane;
      for (int x = 0; x < cols; ++x) d[x] *= sum[x];
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
