// The GPU CRF's algorithms, written once on Thrust: included by cuda.cu (nvcc, CUDA system) and host.cpp (g++,
// Thrust's serial and OpenMP systems), each inside its own namespace DEEPLAB_CRF_GPU_NS and with Thrust wrapped in its
// own namespace (THRUST_CUB_WRAPPED_NAMESPACE), so the systems link into one program.
//
// Every step is a Thrust algorithm or a functor run once per element (th::for_each_n over an index); no functor
// writes a place another one writes, none sums with atomics, and every float sum runs in a fixed order, so the
// result does not depend on the system, the thread count or the GPU. The arithmetic mirrors the CPU CRF's (same
// elevation, barycentric weights, blur, normalisation, softmax polynomial), without fused multiply-add.
#include <thrust/copy.h>
#include <thrust/device_malloc.h>
#include <thrust/device_free.h>
#include <thrust/device_vector.h>
#include <thrust/execution_policy.h>
#include <thrust/fill.h>
#include <thrust/for_each.h>
#include <thrust/iterator/counting_iterator.h>
#include <thrust/scan.h>
#include <thrust/sequence.h>
#include <thrust/sort.h>
#include <thrust/transform.h>
#include <thrust/transform_reduce.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "../filter_rules.hpp"
#include "backend.hpp"

#ifdef __CUDACC__
#define DEEPLAB_HD __host__ __device__
#else
#define DEEPLAB_HD
#endif

namespace deeplab::crf::gpu::DEEPLAB_CRF_GPU_NS {
namespace {

namespace th = ::THRUST_CUB_WRAPPED_NAMESPACE::thrust;
using i32 = std::int32_t;
using i64 = std::int64_t;
using u16 = std::uint16_t;
using u32 = std::uint32_t;
using u64 = std::uint64_t;
template <class T>
using Vec = th::device_vector<T>;

template <class T>
T* raw(Vec<T>& v) {
    return th::raw_pointer_cast(v.data());
}

// Grows v to at least `size` elements (a quarter more room when it must reallocate), so frames of varying lattice
// size reallocate only while the largest so far grows.
template <class T>
void ensure(Vec<T>& v, std::size_t size) {
    if (v.capacity() < size) v.reserve(size + size / 4);
    v.resize(size);
}

// Thrust's temporary storage (sorts, scans) from blocks kept across calls: no allocation per frame once warm.
class CachedAllocator {
  public:
    using value_type = char;
    CachedAllocator() = default;
    CachedAllocator(const CachedAllocator&) = delete;
    CachedAllocator& operator=(const CachedAllocator&) = delete;
    ~CachedAllocator() {
        for (auto& [size, p] : free_) th::device_free(p);
        for (auto& [p, size] : used_) th::device_free(th::device_ptr<char>(p));
    }
    char* allocate(std::ptrdiff_t n) {
        const auto it = free_.lower_bound(static_cast<std::size_t>(n));
        th::device_ptr<char> p;
        std::size_t size = static_cast<std::size_t>(n);
        if (it != free_.end() && it->first <= 2 * size + 4096) {
            size = it->first;
            p = it->second;
            free_.erase(it);
        } else {
            p = th::device_malloc<char>(size);
        }
        used_[th::raw_pointer_cast(p)] = size;
        return th::raw_pointer_cast(p);
    }
    void deallocate(char* p, std::size_t) {
        const auto it = used_.find(p);
        free_.emplace(it->second, th::device_ptr<char>(p));
        used_.erase(it);
    }

  private:
    std::multimap<std::size_t, th::device_ptr<char>> free_;
    std::map<char*, std::size_t> used_;
};

template <class F>
void for_each_index(i64 count, const F& f) {
    if (count > 0) th::for_each_n(th::device, th::counting_iterator<i64>(0), count, f);
}

// Copies bytes between host and system memory in any direction (CUDA: unified addressing tells which is which), so a
// caller's pointers may be host or device memory. The algorithms below take raw pointers with an explicit policy.
void copy_bytes(void* dst, const void* src, std::size_t bytes) {
    if (bytes == 0) return;
#ifdef __CUDACC__
    const cudaError_t e = cudaMemcpy(dst, src, bytes, cudaMemcpyDefault);
    if (e != cudaSuccess) throw std::runtime_error(std::string("CUDA error: ") + cudaGetErrorString(e));
#else
    std::memcpy(dst, src, bytes);
#endif
}

void synchronize() {
#ifdef __CUDACC__
    const cudaError_t e = cudaDeviceSynchronize();
    if (e != cudaSuccess) throw std::runtime_error(std::string("CUDA error: ") + cudaGetErrorString(e));
#endif
}

// ---- scalar arithmetic, as the CPU kernels compute it lane by lane ----

DEEPLAB_HD inline u32 bits_of(float f) {
    u32 u;
    memcpy(&u, &f, 4);
    return u;
}
DEEPLAB_HD inline float float_of(u32 u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

// exp(x) for x <= 0: the Cephes polynomial of the CPU kernels (Ops::exp_nonpositive); 0 below -87.
DEEPLAB_HD inline float exp_nonpositive(float x) {
    const bool under = x < -87.f;
    const float xc = under ? -87.f : x;
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
    const float y = p * float_of(static_cast<u32>(static_cast<i32>(n) + 127) << 23);
    return under ? 0.f : y;
}

// log(x) for normal x > 0: the Cephes polynomial of the CPU kernels (log_positive).
DEEPLAB_HD inline float log_positive(float x) {
    const u32 b = bits_of(x);
    float e = static_cast<float>(static_cast<i32>((b >> 23) & 0xff) - 126);
    float m = float_of((b & 0x807fffffu) | 0x3f000000u);
    if (m < 0.707106781186547524f) {
        e = e - 1.f;
        m = m + m;
    }
    m = m - 1.f;
    const float z = m * m;
    float p = 7.0376836292e-2f;
    p = p * m - 1.1514610310e-1f;
    p = p * m + 1.1676998740e-1f;
    p = p * m - 1.2420140846e-1f;
    p = p * m + 1.4249322787e-1f;
    p = p * m - 1.6668057665e-1f;
    p = p * m + 2.0000714765e-1f;
    p = p * m - 2.4999993993e-1f;
    p = p * m + 3.3333331174e-1f;
    float y = m * z * p;
    y = y + e * -2.12194440e-4f;
    y = y - z * 0.5f;
    return (m + y) + e * 0.693359375f;
}

// IEEE binary16, round to nearest even (as F16C / NEON convert), and back.
DEEPLAB_HD inline u16 to_half(float f) {
    const u32 x = bits_of(f), sign = (x >> 16) & 0x8000u, ax = x & 0x7fffffffu;
    if (ax >= 0x7f800000u) return static_cast<u16>(sign | (ax > 0x7f800000u ? 0x7e00u : 0x7c00u));
    if (ax >= 0x477ff000u) return static_cast<u16>(sign | 0x7c00u);  // rounds to infinity
    if (ax < 0x38800000u) {                                          // half subnormal (or zero): units of 2^-24
        const float t = (float_of(ax) * 16777216.f + 12582912.f) - 12582912.f;
        return static_cast<u16>(sign | static_cast<u32>(t));
    }
    return static_cast<u16>(sign | ((ax + 0xc8000fffu + ((ax >> 13) & 1u)) >> 13));
}
DEEPLAB_HD inline float from_half(u16 h) {
    const u32 sign = static_cast<u32>(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
    if (e == 0) {
        const float v = static_cast<float>(m) * 5.9604644775390625e-8f;
        return sign ? -v : v;
    }
    if (e == 31) return float_of(sign | 0x7f800000u | (m << 13));
    return float_of(sign | ((e + 112) << 23) | (m << 13));
}

DEEPLAB_HD inline float load(const float* p) {
    return *p;
}
DEEPLAB_HD inline float load(const u16* p) {
    return from_half(*p);
}
DEEPLAB_HD inline void store(float* p, float v) {
    *p = v;
}
DEEPLAB_HD inline void store(u16* p, float v) {
    *p = to_half(v);
}

// ---- lattice keys ----

constexpr int kMaxDim = 5;  // the 2-d smoothness and 5-d bilateral features of DenseCRF2D

// A vertex key (d coordinates, all congruent to its remainder r mod d + 1) packed into 64 bits: r, then per
// coordinate (c - r) / (d + 1) + bias in `bits` bits. Sorting the packed keys groups equal vertices.
struct KeyCodec {
    int dp1, rbits, bits;
    i64 bias;
    u64 mask;

    DEEPLAB_HD bool pack(const int* c, int d, u64& key) const {
        int r = c[0] % dp1;
        if (r < 0) r += dp1;
        u64 k = static_cast<u64>(r);
        for (int i = 0; i < d; ++i) {
            const i64 q = (c[i] - r) / dp1 + bias;
            if (q < 0 || static_cast<u64>(q) > mask) return false;
            k |= static_cast<u64>(q) << (rbits + bits * i);
        }
        key = k;
        return true;
    }
    DEEPLAB_HD void unpack(u64 key, int d, int* c) const {
        const int r = static_cast<int>(key & ((u64{1} << rbits) - 1));
        for (int i = 0; i < d; ++i)
            c[i] = static_cast<int>((static_cast<i64>((key >> (rbits + bits * i)) & mask) - bias) * dp1 + r);
    }
};

// Pixel p's features: x / s[0], y / s[1], then (5-d) its colour channels / s[2..4]; the reference padding point
// (p == n) is the zero vector.
struct Features {
    const std::uint8_t* image;
    int width;
    i64 n;
    float s[kMaxDim];

    DEEPLAB_HD void operator()(i64 p, int d, float* f) const {
        if (p >= n) {
            for (int j = 0; j < d; ++j) f[j] = 0.f;
            return;
        }
        f[0] = static_cast<float>(p % width) / s[0];
        f[1] = static_cast<float>(p / width) / s[1];
        for (int c = 0; c + 2 < d; ++c) f[2 + c] = static_cast<float>(image[p * 3 + c]) / s[2 + c];
    }
};

// Elevates point p onto the lattice (as Permutohedral's elevate): its d + 1 vertex keys and barycentric weights at
// entries p (d + 1) + r.
template <int D>
struct Elevate {
    Features features;
    KeyCodec codec;
    float scale[D];
    u64* keys;
    float* bary_out;

    DEEPLAB_HD void operator()(i64 p) const {
        constexpr int d = D, dp1 = D + 1;
        float f[D], elevated[dp1], rem0[dp1], bary[dp1 + 1];
        int rank[dp1];
        features(p, d, f);
        const float inv_dp1 = 1.0f / dp1, f_dp1 = static_cast<float>(dp1);
        float sm = 0.f;
        for (int j = d; j > 0; --j) {
            const float cf = f[j - 1] * scale[j - 1];
            elevated[j] = sm - static_cast<float>(j) * cf;
            sm += cf;
        }
        elevated[0] = sm;
        float sum = 0.f;
        for (int i = 0; i <= d; ++i) {
            const float v = (inv_dp1 * elevated[i] + 12582912.f) - 12582912.f;
            rem0[i] = v * f_dp1;
            sum += v;
            rank[i] = 0;
        }
        for (int i = 0; i < d; ++i) {
            const float di = elevated[i] - rem0[i];
            for (int j = i + 1; j <= d; ++j) {
                if (di < elevated[j] - rem0[j])
                    ++rank[i];
                else
                    ++rank[j];
            }
        }
        const int isum = static_cast<int>(sum);
        for (int i = 0; i <= d; ++i) {
            rank[i] += isum;
            if (rank[i] < 0) {
                rank[i] += dp1;
                rem0[i] += f_dp1;
            } else if (rank[i] > d) {
                rank[i] -= dp1;
                rem0[i] -= f_dp1;
            }
        }
        for (int i = 0; i <= d + 1; ++i) bary[i] = 0.f;
        for (int i = 0; i <= d; ++i) {
            const float v = (elevated[i] - rem0[i]) * inv_dp1;
            bary[d - rank[i]] += v;
            bary[d - rank[i] + 1] -= v;
        }
        bary[0] += 1.f + bary[d + 1];
        for (int r = 0; r <= d; ++r) {
            int c[D] = {};
            for (int i = 0; i < d; ++i) c[i] = static_cast<int>(rem0[i]) + (rank[i] <= d - r ? r : r - dp1);
            u64 key = 0;
            codec.pack(c, d, key);  // in range: the codec's bits cover the features' bound
            keys[p * dp1 + r] = key;
            bary_out[p * dp1 + r] = bary[r];
        }
    }
};

// head[s] = 1 where sorted entry s starts a new key.
struct MarkHeads {
    const u64* keys;
    i32* head;
    DEEPLAB_HD void operator()(i64 s) const { head[s] = s == 0 || keys[s] != keys[s - 1] ? 1 : 0; }
};

// From the sorted entries (vertex id + 1 in vid): the vertices' keys and first entries, each point entry's vertex,
// and the splat's entries (point, unscaled weight; point -1 for the padding point's entries, which only add
// vertices to the blur).
struct Vertices {
    const u64* keys;
    const i32* perm;
    const i32* vid;
    const float* bary;
    int dp1;
    i64 point_entries, total;
    u64* vertex_keys;
    i32* begin;
    i32* offsets;
    i32* splat_point;
    float* splat_weight;
    DEEPLAB_HD void operator()(i64 s) const {
        const i32 v = vid[s] - 1;
        if (s == 0 || vid[s - 1] != vid[s]) {
            vertex_keys[v] = keys[s];
            begin[v] = static_cast<i32>(s);
        }
        if (s == total - 1) begin[v + 1] = static_cast<i32>(total);
        const i64 e = perm[s];
        if (e < point_entries) {
            offsets[e] = v;
            splat_point[s] = static_cast<i32>(e / dp1);
            splat_weight[s] = bary[e];
        } else {
            splat_point[s] = -1;
            splat_weight[s] = 0.f;
        }
    }
};

// The neighbour of vertex v along axis j (key - (1, .., 1) + (d + 1) e_j, e_d = 0) by binary search of the sorted
// keys: pred[j m + v], and v as its successor.
struct FindPredecessor {
    const u64* vertex_keys;
    KeyCodec codec;
    int d;
    i64 m;
    i32* pred;
    DEEPLAB_HD void operator()(i64 t) const {
        const i64 j = t / m, v = t % m;
        int c[kMaxDim] = {};
        codec.unpack(vertex_keys[v], d, c);
        for (int i = 0; i < d; ++i) c[i] += (i == j ? d : -1);
        u64 key;
        i32 found = -1;
        if (codec.pack(c, d, key)) {
            i64 lo = 0, hi = m;
            while (lo < hi) {
                const i64 mid = (lo + hi) / 2;
                if (vertex_keys[mid] < key)
                    lo = mid + 1;
                else
                    hi = mid;
            }
            if (lo < m && vertex_keys[lo] == key) found = static_cast<i32>(lo);
        }
        pred[t] = found;
    }
};
struct LinkSuccessor {
    const i32* pred;
    i64 m;
    i32* succ;
    DEEPLAB_HD void operator()(i64 t) const {
        if (pred[t] >= 0) succ[(t / m) * m + pred[t]] = static_cast<i32>(t % m);
    }
};

// ---- filtering ----

// Vertex rows: each (vertex, label) the sum of its entries' weighted inputs, in entry (point) order.
template <class T>
struct Splat {
    const i32* begin;
    const i32* point;
    const float* weight;
    const float* in;  // n x labels
    int labels;
    T* out;  // m x labels
    DEEPLAB_HD void operator()(i64 t) const {
        const i64 v = t / labels, l = t % labels;
        float acc = 0.f;
        for (i32 s = begin[v]; s < begin[v + 1]; ++s)
            if (point[s] >= 0) acc = acc + weight[s] * in[static_cast<i64>(point[s]) * labels + l];
        store(out + t, acc);
    }
};

// One blur pass along an axis: new = old + 0.5 (old[pred] + old[succ]) (a missing neighbour is 0).
template <class T>
struct Blur {
    const i32* pred;
    const i32* succ;
    const T* in;
    int labels;
    T* out;
    DEEPLAB_HD void operator()(i64 t) const {
        const i64 v = t / labels, l = t % labels;
        const float a = pred[v] >= 0 ? load(in + static_cast<i64>(pred[v]) * labels + l) : 0.f;
        const float b = succ[v] >= 0 ? load(in + static_cast<i64>(succ[v]) * labels + l) : 0.f;
        store(out + t, load(in + t) + 0.5f * (a + b));
    }
};

// The column half of an image-space Gaussian: out(x, y) = pre_x[x] sum_d (taps[d] pre_y[y + d]) in(x, y + d).
struct ColumnFilter {
    const float* in;
    float* out;
    int width, height, radius, labels;
    const float* taps;
    const float* pre_x;
    const float* pre_y;
    DEEPLAB_HD void operator()(i64 t) const {
        const i64 i = t / labels;
        const int x = static_cast<int>(i % width), y = static_cast<int>(i / width);
        const int lo = y < radius ? -y : -radius, hi = height - 1 - y < radius ? height - 1 - y : radius;
        const i64 row = static_cast<i64>(width) * labels;
        float acc = (taps[radius + lo] * pre_y[y + lo]) * in[t + lo * row];
        for (int d = lo + 1; d <= hi; ++d) acc = acc + (taps[radius + d] * pre_y[y + d]) * in[t + d * row];
        out[t] = pre_x[x] * acc;
    }
};

// One pairwise term as the fused pass reads it.
struct TermView {
    int kind;  // 0 lattice with float rows, 1 lattice with half rows, 2 image-space Gaussian
    int dp1;
    const i32* offsets;
    const float* slice_w;
    const float* values;  // float rows, or the image term's column pass
    const u16* half;
    int width, radius;  // image term
    const float* taps;
    const float* post_x;
    const float* post_y;
};

// e = -U + sum over terms of the (weighted, normalised) filtered Q, then softmax, per pixel.
struct Softmax {
    const float* neg_unary;
    TermView terms[2];
    int n_terms, labels;
    float* q;
    DEEPLAB_HD void operator()(i64 i) const {
        float e[GpuRefiner::kMaxLabels];
        for (int l = 0; l < labels; ++l) e[l] = neg_unary[i * labels + l];
        for (int k = 0; k < n_terms; ++k) {
            const TermView& tv = terms[k];
            if (tv.kind == 2) {
                const int x = static_cast<int>(i % tv.width);
                const float post = tv.post_x[x] * tv.post_y[i / tv.width];
                const int lo = x < tv.radius ? -x : -tv.radius;
                const int hi = tv.width - 1 - x < tv.radius ? tv.width - 1 - x : tv.radius;
                for (int d = lo; d <= hi; ++d) {
                    const float wd = post * tv.taps[tv.radius + d];
                    const float* row = tv.values + (i + d) * labels;
                    for (int l = 0; l < labels; ++l) e[l] = e[l] + wd * row[l];
                }
                continue;
            }
            for (int r = 0; r < tv.dp1; ++r) {
                const float w = tv.slice_w[i * tv.dp1 + r];
                const i64 row = static_cast<i64>(tv.offsets[i * tv.dp1 + r]) * labels;
                if (tv.kind == 1)
                    for (int l = 0; l < labels; ++l) e[l] = e[l] + w * from_half(tv.half[row + l]);
                else
                    for (int l = 0; l < labels; ++l) e[l] = e[l] + w * tv.values[row + l];
            }
        }
        float mx = e[0];
        for (int l = 1; l < labels; ++l) mx = e[l] > mx ? e[l] : mx;
        float sum = 0.f;
        for (int l = 0; l < labels; ++l) {
            e[l] = exp_nonpositive(e[l] - mx);
            sum += e[l];
        }
        const float inv = 1.f / sum;
        for (int l = 0; l < labels; ++l) q[i * labels + l] = e[l] * inv;
    }
};

// The kernel normalisation's slice of K * 1 (one value per vertex), then the pre / post factors folded into the
// splat and slice weights (the Potts weight into post), as DenseCRF's add_term.
struct NormFactors {
    const i32* offsets;
    const float* slice_w;
    const float* values;
    int dp1, normalization;
    float weight;
    float* pre;
    float* post;
    DEEPLAB_HD void operator()(i64 i) const {
        float o = 0.f;
        for (int r = 0; r < dp1; ++r) o = o + slice_w[i * dp1 + r] * values[offsets[i * dp1 + r]];
        const double v = o;
        float a = 1.f, b = 1.f;
        if (normalization == static_cast<int>(Normalization::Symmetric))
            a = b = static_cast<float>(1.0 / sqrt(v + 1e-20));
        else if (normalization == static_cast<int>(Normalization::Before))
            a = static_cast<float>(1.0 / (v + 1e-20));
        else if (normalization == static_cast<int>(Normalization::After))
            b = static_cast<float>(1.0 / (v + 1e-20));
        pre[i] = a;
        post[i] = b * weight;
    }
};
struct ScaleSlice {
    const float* post;
    int dp1;
    float* slice_w;
    DEEPLAB_HD void operator()(i64 e) const { slice_w[e] *= post[e / dp1]; }
};
struct ScaleSplat {
    const float* pre;
    const i32* point;
    float* weight;
    DEEPLAB_HD void operator()(i64 s) const {
        if (point[s] >= 0) weight[s] *= pre[point[s]];
    }
};

// -U = log(clip(p, clip, 1)), label-major probabilities to pixel-major rows.
struct Unary {
    const float* probs;
    i64 n;
    int labels;
    float clip;
    float* neg_unary;
    DEEPLAB_HD void operator()(i64 t) const {
        const i64 i = t / labels, l = t % labels;
        float p = probs[l * n + i];
        p = p < clip ? clip : p;
        p = p > 1.f ? 1.f : p;
        neg_unary[t] = log_positive(p);
    }
};
struct ToPixelMajor {
    const float* src;
    i64 n;
    int labels;
    float* dst;
    DEEPLAB_HD void operator()(i64 t) const { dst[t] = src[(t % labels) * n + t / labels]; }
};
struct ToLabelMajor {
    const float* src;
    i64 n;
    int labels;
    float* dst;
    DEEPLAB_HD void operator()(i64 t) const { dst[t] = src[(t % n) * labels + t / n]; }
};
struct NonFinite {
    DEEPLAB_HD int operator()(float x) const { return (bits_of(x) & 0x7f800000u) == 0x7f800000u ? 1 : 0; }
};
struct ChannelByte {
    const std::uint8_t* image;
    int channel;
    DEEPLAB_HD int operator()(i64 p) const { return image[p * 3 + channel]; }
};
struct Max {
    DEEPLAB_HD int operator()(int a, int b) const { return a > b ? a : b; }
};

// The argmax of each pixel's probabilities (lowest label on ties).
struct SoftmaxArgmax {
    const float* q;
    int labels;
    i32* argmax;
    DEEPLAB_HD void operator()(i64 i) const {
        int best = 0;
        for (int l = 1; l < labels; ++l)
            if (q[i * labels + l] > q[i * labels + best]) best = l;
        argmax[i] = best;
    }
};

struct ScaleBy {
    float a;
    DEEPLAB_HD float operator()(float x) const { return x * a; }
};

// ---- reduced resolution ----

// Area averaging down the columns: cols(c, y, x) = sum_k wy[k] src(c, ty[k], x), src planar (planes x h x w) or
// interleaved (h x w x planes).
template <class T>
struct ShrinkColumns {
    const T* src;
    int w, h, sh, planes;
    bool interleaved;
    const i32* start;
    const i32* source;
    const float* weight;
    float* cols;  // planes x sh x w
    DEEPLAB_HD void operator()(i64 t) const {
        const i64 x = t % w, y = (t / w) % sh, c = t / (static_cast<i64>(w) * sh);
        float acc = 0.f;
        for (i32 k = start[y]; k < start[y + 1]; ++k) {
            const i64 p = static_cast<i64>(source[k]) * w + x;
            const T v = interleaved ? src[p * planes + c] : src[c * static_cast<i64>(w) * h + p];
            acc += weight[k] * static_cast<float>(v);
        }
        cols[t] = acc;
    }
};
// ... then along the rows, into dst (same layout as src at sw x sh).
template <class T>
struct ShrinkRows {
    const float* cols;
    int w, sw, sh, planes;
    bool interleaved;
    const i32* start;
    const i32* source;
    const float* weight;
    T* dst;
    DEEPLAB_HD void operator()(i64 t) const {
        const i64 x = t % sw, y = (t / sw) % sh, c = t / (static_cast<i64>(sw) * sh);
        const float* row = cols + (c * sh + y) * w;
        float v = 0.f;
        for (i32 k = start[x]; k < start[x + 1]; ++k) v += weight[k] * row[source[k]];
        const i64 o = interleaved ? (y * sw + x) * planes + c : t;
        if (sizeof(T) == 1)
            dst[o] = static_cast<T>(v + 0.5f < 255.f ? v + 0.5f : 255.f);
        else
            dst[o] = static_cast<T>(v);
    }
};
// message = log clip(Q_small) - log clip(P_small), label-major.
struct Message {
    const float* q;  // pixel-major
    const float* probs;
    i64 n;
    int labels;
    float clip;
    float* message;
    DEEPLAB_HD void operator()(i64 t) const {
        const i64 l = t / n, i = t % n;
        const auto log_clipped = [&](float v) { return log_positive(v < clip ? clip : (v > 1.f ? 1.f : v)); };
        message[t] = log_clipped(q[i * labels + l]) - log_clipped(probs[t]);
    }
};
// out = clip(P) exp(min(up(message) - shift, 0)) / sum over labels, per full-resolution pixel (the CPU's add_message).
struct AddMessage {
    const float* message;
    int sw, sh;
    const float* probs;
    int w, labels;
    i64 n;
    float clip, shift;
    const i32* x0;
    const i32* x1;
    const float* tx;
    const i32* y0;
    const i32* y1;
    const float* ty;
    float* out;  // label-major, may alias probs
    i32* argmax;
    DEEPLAB_HD void operator()(i64 i) const {
        const int x = static_cast<int>(i % w), y = static_cast<int>(i / w);
        float e[GpuRefiner::kMaxLabels];
        float sum = 0.f;
        for (int c = 0; c < labels; ++c) {
            const float* a = message + (static_cast<i64>(c) * sh + y0[y]) * sw;
            const float* b = message + (static_cast<i64>(c) * sh + y1[y]) * sw;
            const float top = a[x0[x]] + tx[x] * (a[x1[x]] - a[x0[x]]);
            const float bottom = b[x0[x]] + tx[x] * (b[x1[x]] - b[x0[x]]);
            const float v = (top + ty[y] * (bottom - top)) - shift;
            float p = probs[c * n + i];
            p = p < clip ? clip : (p > 1.f ? 1.f : p);
            e[c] = exp_nonpositive(v > 0.f ? 0.f : v) * p;
            sum += e[c];
        }
        const float inv = 1.f / sum;
        int best = 0;
        for (int c = 0; c < labels; ++c) {
            const float v = e[c] * inv;
            if (out) out[c * n + i] = v;
            if (e[c] > e[best]) best = c;
        }
        if (argmax) argmax[i] = best;
    }
};

// ---- the refiner ----

// A lattice term's arrays (its geometry, weights and neighbours) and its vertex rows.
struct LatticeTerm {
    int d = 0;
    i64 m = 0;
    KeyCodec codec{};
    Vec<u64> keys, vertex_keys;
    Vec<i32> perm, vid, begin, offsets, splat_point, pred, succ;
    Vec<float> bary, slice_w, splat_weight, pre, post;
    Vec<float> rows_f[2];
    Vec<u16> rows_h[2];
    int final_buffer = 0;
};

struct ImageTerm {
    int width = 0, height = 0, radius_x = 0, radius_y = 0;
    Vec<float> taps_x, taps_y, pre_x, pre_y, post_x, post_y, columns;
};

// A smoothness Gaussian term: in image space, or (sigma above 4/3, or no normalisation) on a 2-d lattice kept while
// its geometry does not change.
struct SmoothnessKey {
    int width = -1, height = -1;
    float sx = 0, sy = 0, weight = 0;
    int normalization = -1;
    bool operator==(const SmoothnessKey& o) const {
        return width == o.width && height == o.height && sx == o.sx && sy == o.sy && weight == o.weight &&
               normalization == o.normalization;
    }
};

template <class T>
Vec<T> upload(const std::vector<T>& v) {
    Vec<T> d(v.size());
    copy_bytes(raw(d), v.data(), v.size() * sizeof(T));
    return d;
}

class Engine final : public GpuRefiner::Backend {
  public:
    void set_profile(GpuProfile* profile) override { profile_ = profile; }

    void refine(const GpuRequest& r) override {
        r.params.validate();
        if (r.width <= 0 || r.height <= 0) throw std::invalid_argument("bad image size");
        if (r.n_labels < 1 || r.n_labels > GpuRefiner::kMaxLabels)
            throw std::invalid_argument("the GPU CRF takes 1 to " + std::to_string(GpuRefiner::kMaxLabels) +
                                        " labels, got " + std::to_string(r.n_labels));
        if (!r.image || !r.probs || (!r.out && !r.labels)) throw std::invalid_argument("null image, probs or output");
        const i64 n = static_cast<i64>(r.width) * r.height, planes = n * r.n_labels;
        {
            Phase ph(this, &GpuProfile::upload);
            copy_in(r.image, n * 3, image_);
            copy_in(r.probs, planes, probs_);
            if (r.init) copy_in(r.init, planes, init_);
            if (th::transform_reduce(th::device, raw(probs_), raw(probs_) + planes, NonFinite{}, 0, th::plus<int>()))
                throw std::invalid_argument("probabilities contain NaN or infinity");
        }
        const int sw = detail::reduced_size(r.params.scale, r.width),
                  sh = detail::reduced_size(r.params.scale, r.height);
        ensure(out_, static_cast<std::size_t>(planes));
        ensure(argmax_, static_cast<std::size_t>(r.labels ? n : 0));
        i32* argmax = r.labels ? raw(argmax_) : nullptr;
        if (r.params.scale == 1.f || (sw == r.width && sh == r.height)) {
            mean_field(raw(image_), r.width, r.height, raw(probs_), r.init ? raw(init_) : nullptr, r.n_labels, r.params,
                       raw(out_), argmax);
        } else {
            reduced(r, sw, sh, argmax);
        }
        Phase ph(this, &GpuProfile::download);
        if (r.out) copy_out(out_, planes, r.out);
        if (r.labels) copy_out(argmax_, n, r.labels);
        if (profile_) ++profile_->frames;
    }

  private:
    // Times a phase (synchronising the device at both ends) when profiling.
    struct Phase {
        Engine* e;
        double GpuProfile::*field;
        std::chrono::steady_clock::time_point t0;
        Phase(Engine* engine, double GpuProfile::*f) : e(engine), field(f) {
            if (e->profile_) {
                synchronize();
                t0 = std::chrono::steady_clock::now();
            }
        }
        ~Phase() {
            if (!e->profile_) return;
            synchronize();
            e->profile_->*field += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        }
    };

    template <class T>
    static void copy_in(const T* src, i64 count, Vec<T>& dst) {
        ensure(dst, static_cast<std::size_t>(count));
        copy_bytes(raw(dst), src, static_cast<std::size_t>(count) * sizeof(T));
    }
    template <class T>
    static void copy_out(Vec<T>& src, i64 count, T* dst) {
        copy_bytes(dst, raw(src), static_cast<std::size_t>(count) * sizeof(T));
    }

    // Mean field at the image's own size: probs, init (may be null) and out label-major.
    void mean_field(const std::uint8_t* image, int width, int height, const float* probs, const float* init, int labels,
                    const RefineParams& p, float* out, i32* argmax) {
        const i64 n = static_cast<i64>(width) * height;
        ensure(neg_unary_, static_cast<std::size_t>(n * labels));
        ensure(q_, static_cast<std::size_t>(n * labels));
        {
            Phase ph(this, &GpuProfile::unary);
            for_each_index(n * labels, Unary{probs, n, labels, p.clip, raw(neg_unary_)});
        }
        const bool image_space = detail::image_space_gaussian(p.gaussian_sxy, p.gaussian_sxy, p.normalization);
        if (image_space)
            set_image_term(width, height, p);
        else
            set_smoothness_lattice(width, height, p);
        {
            Phase ph(this, &GpuProfile::lattice);
            const float s = p.bilateral_srgb;
            build_lattice<5>(bilateral_, Features{image, width, n, {p.bilateral_sxy, p.bilateral_sxy, s, s, s}});
        }
        {
            Phase ph(this, &GpuProfile::normalisation);
            normalise(bilateral_, n, p.normalization, p.bilateral_weight);
        }
        if (profile_) profile_->vertices = bilateral_.m;
        LatticeTerm* lattices[2] = {image_space ? nullptr : &smooth_, &bilateral_};
        const bool half = p.half_rows;
        for (LatticeTerm* t : lattices)
            if (t)
                for (int b = 0; b < 2; ++b) {
                    ensure(t->rows_h[b], half ? static_cast<std::size_t>(t->m * labels) : 0);
                    ensure(t->rows_f[b], half ? 0 : static_cast<std::size_t>(t->m * labels));
                }
        if (image_space) ensure(gauss_.columns, static_cast<std::size_t>(n * labels));

        if (init) {
            Phase ph(this, &GpuProfile::unary);
            for_each_index(n * labels, ToPixelMajor{init, n, labels, raw(q_)});
        } else {
            Phase ph(this, &GpuProfile::unary);
            for_each_index(n, Softmax{raw(neg_unary_), {}, 0, labels, raw(q_)});
        }
        for (int it = 0; it < p.iterations; ++it) {
            if (image_space) {
                Phase ph(this, &GpuProfile::blur);
                for_each_index(n * labels,
                               ColumnFilter{raw(q_), raw(gauss_.columns), width, height, gauss_.radius_y, labels,
                                            raw(gauss_.taps_y), raw(gauss_.pre_x), raw(gauss_.pre_y)});
            }
            for (LatticeTerm* t : lattices)
                if (t) filter(*t, raw(q_), labels, half);
            Phase ph(this, &GpuProfile::slice);
            Softmax sm{raw(neg_unary_), {}, 0, labels, raw(q_)};
            if (image_space)
                sm.terms[sm.n_terms++] = TermView{2,
                                                  0,
                                                  nullptr,
                                                  nullptr,
                                                  raw(gauss_.columns),
                                                  nullptr,
                                                  width,
                                                  gauss_.radius_x,
                                                  raw(gauss_.taps_x),
                                                  raw(gauss_.post_x),
                                                  raw(gauss_.post_y)};
            for (LatticeTerm* t : lattices)
                if (t) sm.terms[sm.n_terms++] = lattice_view(*t, half);
            for_each_index(n, sm);
        }
        Phase ph(this, &GpuProfile::slice);
        if (argmax) {  // the argmax of the result: the softmax of the final energies, or of the warm start
            SoftmaxArgmax a{raw(q_), labels, argmax};
            for_each_index(n, a);
        }
        if (out) for_each_index(n * labels, ToLabelMajor{raw(q_), n, labels, out});
    }

    static TermView lattice_view(LatticeTerm& t, bool half) {
        TermView v{};
        v.kind = half ? 1 : 0;
        v.dp1 = t.d + 1;
        v.offsets = raw(t.offsets);
        v.slice_w = raw(t.slice_w);
        if (half)
            v.half = raw(t.rows_h[t.final_buffer]);
        else
            v.values = raw(t.rows_f[t.final_buffer]);
        return v;
    }

    void filter(LatticeTerm& t, const float* q, int labels, bool half) {
        if (half)
            filter_rows(t, q, labels, t.rows_h);
        else
            filter_rows(t, q, labels, t.rows_f);
    }

    template <class T>
    void filter_rows(LatticeTerm& t, const float* q, int labels, Vec<T>* rows) {
        const i64 count = t.m * labels;
        {
            Phase ph(this, &GpuProfile::splat);
            for_each_index(count,
                           Splat<T>{raw(t.begin), raw(t.splat_point), raw(t.splat_weight), q, labels, raw(rows[0])});
        }
        Phase ph(this, &GpuProfile::blur);
        t.final_buffer = blur(t, rows, labels);
    }

    // The d + 1 blur passes, ping-ponging between the two row buffers; returns the one holding the result.
    template <class T>
    static int blur(LatticeTerm& t, Vec<T>* rows, int labels) {
        int cur = 0;
        for (int j = 0; j <= t.d; ++j) {
            for_each_index(t.m * labels, Blur<T>{raw(t.pred) + j * t.m, raw(t.succ) + j * t.m, raw(rows[cur]), labels,
                                                 raw(rows[1 - cur])});
            cur = 1 - cur;
        }
        return cur;
    }

    void set_image_term(int width, int height, const RefineParams& p) {
        Phase ph(this, &GpuProfile::lattice);
        const SmoothnessKey key{
            width, height, p.gaussian_sxy, p.gaussian_sxy, p.gaussian_weight, static_cast<int>(p.normalization)};
        if (key == image_key_) return;
        const detail::GaussianAxis ax = detail::gaussian_axis(p.gaussian_sxy, width, p.normalization);
        const detail::GaussianAxis ay = detail::gaussian_axis(p.gaussian_sxy, height, p.normalization);
        std::vector<float> post_x = ax.post;
        for (float& v : post_x) v *= p.gaussian_weight;
        gauss_.width = width;
        gauss_.height = height;
        gauss_.radius_x = ax.radius;
        gauss_.radius_y = ay.radius;
        gauss_.taps_x = upload(ax.taps);
        gauss_.taps_y = upload(ay.taps);
        gauss_.pre_x = upload(ax.pre);
        gauss_.pre_y = upload(ay.pre);
        gauss_.post_x = upload(post_x);
        gauss_.post_y = upload(ay.post);
        image_key_ = key;
    }

    void set_smoothness_lattice(int width, int height, const RefineParams& p) {
        const SmoothnessKey key{
            width, height, p.gaussian_sxy, p.gaussian_sxy, p.gaussian_weight, static_cast<int>(p.normalization)};
        if (key == smooth_key_) return;
        smooth_key_ = SmoothnessKey{};
        const i64 n = static_cast<i64>(width) * height;
        {
            Phase ph(this, &GpuProfile::lattice);
            build_lattice<2>(smooth_, Features{nullptr, width, n, {p.gaussian_sxy, p.gaussian_sxy, 0, 0, 0}});
        }
        Phase ph(this, &GpuProfile::normalisation);
        normalise(smooth_, n, p.normalization, p.gaussian_weight);
        smooth_key_ = key;
    }

    // The largest |feature| per dimension, as Permutohedral::init bounds the lattice coordinates.
    template <int D>
    std::vector<float> feature_bounds(const Features& f) {
        std::vector<float> absmax(D);
        absmax[0] = static_cast<float>(f.width - 1) / f.s[0];
        absmax[1] = static_cast<float>((f.n - 1) / f.width) / f.s[1];
        for (int c = 0; c + 2 < D; ++c) {
            const int mx = th::transform_reduce(th::device, th::counting_iterator<i64>(0),
                                                th::counting_iterator<i64>(f.n), ChannelByte{f.image, c}, 0, Max{});
            absmax[2 + c] = static_cast<float>(mx) / f.s[2 + c];
        }
        for (float a : absmax)
            if (!std::isfinite(a)) throw std::invalid_argument("features contain NaN or infinity (is a sigma zero?)");
        return absmax;
    }

    // Builds t's lattice from the points' features: elevate, sort the vertex keys (stable: equal keys keep point
    // order), number the distinct keys, find each vertex's neighbours by binary search.
    template <int D>
    void build_lattice(LatticeTerm& t, const Features& f) {
        constexpr int d = D, dp1 = D + 1;
        const i64 n = f.n;
        const bool pad = n % 4 != 0;  // the reference's padding point (Permutohedral::init)
        const i64 npts = n + (pad ? 1 : 0), total = npts * dp1, ne = n * dp1;
        if (total >= (i64{1} << 30)) throw std::invalid_argument("too many points for the lattice");
        Elevate<D> el{};
        el.features = f;
        const float inv_std_dev = static_cast<float>(std::sqrt(2.0 / 3.0) * dp1);
        for (int i = 0; i < d; ++i)
            el.scale[i] = static_cast<float>(1.0 / std::sqrt(double((i + 2) * (i + 1))) * inv_std_dev);
        const std::vector<float> absmax = feature_bounds<D>(f);
        double bound = 0.0, tail = 0.0;
        for (int j = d; j >= 0; --j) {
            const double self = j > 0 ? j * double(el.scale[j - 1]) * absmax[j - 1] : 0.0;
            bound = std::max(bound, tail + self);
            if (j > 0) tail += double(el.scale[j - 1]) * absmax[j - 1];
        }
        const double key_bound = bound + 4.0 * dp1;
        if (key_bound > 262144.0)
            throw std::overflow_error(
                "permutohedral lattice coordinates would overflow: the features are too large; "
                "use larger sigmas or a smaller image");
        KeyCodec& codec = t.codec;
        codec.dp1 = dp1;
        codec.rbits = 1;
        while ((1 << codec.rbits) < dp1) ++codec.rbits;
        const i64 qmax = static_cast<i64>(key_bound / dp1) + 3;
        codec.bits = 1;
        while ((i64{1} << codec.bits) < 2 * qmax + 1) ++codec.bits;
        if (codec.rbits + d * codec.bits > 64)
            throw std::overflow_error("the GPU lattice's vertex keys need more than 64 bits: use larger sigmas");
        codec.bias = i64{1} << (codec.bits - 1);
        codec.mask = (u64{1} << codec.bits) - 1;
        el.codec = codec;
        t.d = d;
        ensure(t.keys, total);
        ensure(t.bary, total);
        ensure(t.perm, total);
        ensure(t.vid, total);
        el.keys = raw(t.keys);
        el.bary_out = raw(t.bary);
        for_each_index(npts, el);
        th::sequence(th::device(alloc_), raw(t.perm), raw(t.perm) + total);
        th::stable_sort_by_key(th::device(alloc_), raw(t.keys), raw(t.keys) + total, raw(t.perm));
        for_each_index(total, MarkHeads{raw(t.keys), raw(t.vid)});
        th::inclusive_scan(th::device(alloc_), raw(t.vid), raw(t.vid) + total, raw(t.vid));
        i32 vertices = 0;
        copy_bytes(&vertices, raw(t.vid) + total - 1, sizeof vertices);
        const i64 m = t.m = vertices;
        ensure(t.vertex_keys, m);
        ensure(t.begin, m + 1);
        ensure(t.offsets, ne);
        ensure(t.splat_point, total);
        ensure(t.splat_weight, total);
        for_each_index(total,
                       Vertices{raw(t.keys), raw(t.perm), raw(t.vid), raw(t.bary), dp1, ne, total, raw(t.vertex_keys),
                                raw(t.begin), raw(t.offsets), raw(t.splat_point), raw(t.splat_weight)});
        const float alpha = 1.0f / (1.0f + std::pow(2.0f, -static_cast<float>(d)));  // the reference's scaling
        ensure(t.slice_w, ne);
        th::transform(th::device, raw(t.bary), raw(t.bary) + ne, raw(t.slice_w), ScaleBy{alpha});
        ensure(t.pred, dp1 * m);
        ensure(t.succ, dp1 * m);
        th::fill(th::device, raw(t.succ), raw(t.succ) + dp1 * m, -1);
        for_each_index(dp1 * m, FindPredecessor{raw(t.vertex_keys), codec, d, m, raw(t.pred)});
        for_each_index(dp1 * m, LinkSuccessor{raw(t.pred), m, raw(t.succ)});
    }

    // Kernel normalisation (K * 1 filtered with float rows, as Permutohedral::compute), folded into the weights.
    void normalise(LatticeTerm& t, i64 n, Normalization normalization, float weight) {
        const int dp1 = t.d + 1;
        ensure(ones_, static_cast<std::size_t>(n));
        th::fill(th::device, raw(ones_), raw(ones_) + n, 1.f);
        Vec<float>* rows = t.rows_f;
        ensure(rows[0], t.m);
        ensure(rows[1], t.m);
        for_each_index(
            t.m, Splat<float>{raw(t.begin), raw(t.splat_point), raw(t.splat_weight), raw(ones_), 1, raw(rows[0])});
        const int result = blur(t, rows, 1);
        ensure(t.pre, n);
        ensure(t.post, n);
        for_each_index(n, NormFactors{raw(t.offsets), raw(t.slice_w), raw(rows[result]), dp1,
                                      static_cast<int>(normalization), weight, raw(t.pre), raw(t.post)});
        for_each_index(n * dp1, ScaleSlice{raw(t.post), dp1, raw(t.slice_w)});
        const i64 total = static_cast<i64>(t.splat_point.size());
        for_each_index(total, ScaleSplat{raw(t.pre), raw(t.splat_point), raw(t.splat_weight)});
    }

    // The reduced-resolution CRF (RefineParams::scale < 1), as crf::refine runs it.
    void reduced(const GpuRequest& r, int sw, int sh, i32* argmax) {
        const int w = r.width, h = r.height, labels = r.n_labels;
        const i64 small = static_cast<i64>(sw) * sh, planes = small * labels;
        {
            Phase ph(this, &GpuProfile::unary);
            ensure(small_image_, small * 3);
            ensure(small_probs_, planes);
            shrink(raw(image_), w, h, sw, sh, 3, true, raw(small_image_));
            shrink(raw(probs_), w, h, sw, sh, labels, false, raw(small_probs_));
            if (r.init) {
                ensure(small_init_, planes);
                shrink(raw(init_), w, h, sw, sh, labels, false, raw(small_init_));
            }
        }
        RefineParams p = r.params;
        p.gaussian_sxy *= static_cast<float>(sw) / w;
        p.bilateral_sxy *= static_cast<float>(sw) / w;
        ensure(small_out_, planes);
        mean_field(raw(small_image_), sw, sh, raw(small_probs_), r.init ? raw(small_init_) : nullptr, labels, p,
                   nullptr, nullptr);
        Phase ph(this, &GpuProfile::slice);
        for_each_index(planes, Message{raw(q_), raw(small_probs_), small, labels, p.clip, raw(small_out_)});
        const detail::BilinearAxis ax = detail::bilinear_axis(w, sw), ay = detail::bilinear_axis(h, sh);
        if (!(bilinear_key_[0] == w && bilinear_key_[1] == h && bilinear_key_[2] == sw && bilinear_key_[3] == sh)) {
            bx0_ = upload(ax.i0);
            bx1_ = upload(ax.i1);
            btx_ = upload(ax.t);
            by0_ = upload(ay.i0);
            by1_ = upload(ay.i1);
            bty_ = upload(ay.t);
            bilinear_key_[0] = w;
            bilinear_key_[1] = h;
            bilinear_key_[2] = sw;
            bilinear_key_[3] = sh;
        }
        const i64 n = static_cast<i64>(w) * h;
        for_each_index(
            n, AddMessage{raw(small_out_), sw, sh, raw(probs_), w, labels, n, p.clip, -std::log(p.clip), raw(bx0_),
                          raw(bx1_), raw(btx_), raw(by0_), raw(by1_), raw(bty_), raw(out_), argmax});
    }

    template <class T>
    void shrink(const T* src, int w, int h, int sw, int sh, int planes, bool interleaved, T* dst) {
        const detail::AreaTaps ty = detail::area_taps(h, sh), tx = detail::area_taps(w, sw);
        Vec<i32> ys = upload(ty.start), ysrc = upload(ty.source), xs = upload(tx.start), xsrc = upload(tx.source);
        Vec<float> yw = upload(ty.weight), xw = upload(tx.weight);
        ensure(columns_, static_cast<std::size_t>(planes) * sh * w);
        for_each_index(static_cast<i64>(planes) * sh * w, ShrinkColumns<T>{src, w, h, sh, planes, interleaved, raw(ys),
                                                                           raw(ysrc), raw(yw), raw(columns_)});
        for_each_index(static_cast<i64>(planes) * sh * sw,
                       ShrinkRows<T>{raw(columns_), w, sw, sh, planes, interleaved, raw(xs), raw(xsrc), raw(xw), dst});
    }

    GpuProfile* profile_ = nullptr;
    CachedAllocator alloc_;
    Vec<std::uint8_t> image_, small_image_;
    Vec<float> probs_, init_, out_, neg_unary_, q_, ones_, small_probs_, small_init_, small_out_, columns_;
    Vec<i32> argmax_;
    LatticeTerm bilateral_, smooth_;
    SmoothnessKey smooth_key_, image_key_;
    ImageTerm gauss_;
    Vec<i32> bx0_, bx1_, by0_, by1_;
    Vec<float> btx_, bty_;
    int bilinear_key_[4] = {0, 0, 0, 0};
};

}  // namespace
}  // namespace deeplab::crf::gpu::DEEPLAB_CRF_GPU_NS

namespace deeplab::crf::gpu {
std::unique_ptr<GpuRefiner::Backend> DEEPLAB_CRF_GPU_FACTORY() {
    return std::make_unique<DEEPLAB_CRF_GPU_NS::Engine>();
}
}  // namespace deeplab::crf::gpu
