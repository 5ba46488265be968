#include "crf/permutohedral.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

#include "crf/crf.hpp"
#include "parallel.hpp"
#include "kernels.hpp"

namespace deeplab::crf {
namespace {

using detail::parallel_for;

constexpr std::uint32_t kEmpty = 0xFFFFFFFFu;
// Lattice coordinates up to 2^18 keep the float barycentric weights accurate to ~0.5 %.
constexpr double kMaxCoordinate = 262144.0;
constexpr std::int64_t kChunk = 1024;  // points per build task

inline std::uint32_t load_acquire(const std::uint32_t* p) {
    return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}
inline bool cas(std::uint32_t* p, std::uint32_t& expected, std::uint32_t desired) {
    return __atomic_compare_exchange_n(p, &expected, desired, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
}

// Keys are compared and hashed as n 32-bit words; NW > 0 fixes n at compile time (the common dimensions), so the
// loops unroll.
template <int NW = 0>
inline std::uint32_t hash_words(const std::uint32_t* w, int n_runtime) {
    const int n = NW > 0 ? NW : n_runtime;
    std::uint32_t h = 0x9E3779B9u;
    for (int i = 0; i < n; ++i) {
        h = (h ^ w[i]) * 0x85EBCA77u;
        h = (h << 13) | (h >> 19);
    }
    h ^= h >> 16;
    h *= 0x85ebca6bu;
    h ^= h >> 13;
    h *= 0xc2b2ae35u;
    h ^= h >> 16;
    return h;
}

template <int NW = 0>
inline bool words_equal(const std::uint32_t* a, const std::uint32_t* b, int n_runtime) {
    const int n = NW > 0 ? NW : n_runtime;
    for (int i = 0; i < n; ++i)
        if (a[i] != b[i]) return false;
    return true;
}

// A key of d coordinates (coordinate i = at(i)) as 32-bit words, two 16-bit coordinates a word (the last one
// zero-padded), built in registers: storing the coordinates one by one and then loading them a word at a time would
// make each word-wide load wait for the narrower stores to drain (a store-forwarding stall).
template <class Key, int D = 0, class At>
inline void pack_words(At at, int d_runtime, std::uint32_t* words) {
    const int d = D > 0 ? D : d_runtime;
    if constexpr (sizeof(Key) == 4) {
        for (int i = 0; i < d; ++i) words[i] = static_cast<std::uint32_t>(static_cast<Key>(at(i)));
    } else {
        static_assert(sizeof(Key) == 2, "16- or 32-bit keys");
        for (int i = 0; i < d; i += 2) {
            const std::uint32_t hi = i + 1 < d ? static_cast<std::uint16_t>(static_cast<Key>(at(i + 1))) : 0u;
            words[i / 2] = static_cast<std::uint16_t>(static_cast<Key>(at(i))) | hi << 16;
        }
    }
}

template <class Key, int D = 0>
inline void unpack(const std::uint32_t* words, int d_runtime, Key* key) {
    const int d = D > 0 ? D : d_runtime;
    if constexpr (sizeof(Key) == 4) {
        for (int i = 0; i < d; ++i) key[i] = static_cast<Key>(words[i]);
    } else {
        for (int i = 0; i < d; ++i)
            key[i] = static_cast<Key>(static_cast<std::uint16_t>(i % 2 ? words[i / 2] >> 16 : words[i / 2]));
    }
}

std::size_t next_pow2(std::size_t v) {
    std::size_t p = 64;
    while (p < v) p <<= 1;
    return p;
}

// Open-addressing table of vertex ids (4 bytes a slot, so it stays cache-sized); the keys live in a
// separate array indexed by id. A slot's bits above the id hold a tag from the key's hash, so most probes
// of other keys are rejected without loading their keys (a dependent cache miss each). Inserting writes the
// key to the candidate id's place, then publishes the slot with a compare-and-swap: a reader that sees an id
// also sees its key.
struct KeyTable {
    std::uint32_t* slots;
    std::size_t mask;
    const std::uint32_t* keys;  // n_words per id
    int n_words;
    std::uint32_t id_mask;  // ids never have all these bits set, so no slot equals kEmpty

    const std::uint32_t* key_of(std::uint32_t id) const { return keys + static_cast<std::size_t>(id) * n_words; }
    std::uint32_t tag(std::uint32_t hash) const { return (hash * 0x9E3779B1u) & ~id_mask; }

    // Returns the id stored with `key`, inserting `candidate` (whose key storage is `candidate_key`)
    // when absent (created = true).
    template <int NW>
    std::uint32_t find_or_insert(const std::uint32_t* key, std::uint32_t hash, std::uint32_t candidate,
                                 std::uint32_t* candidate_key, bool& created) {
        const std::uint32_t t = tag(hash);
        bool written = false;
        for (std::size_t h = hash & mask;; h = (h + 1) & mask) {
            std::uint32_t s = load_acquire(slots + h);
            if (s == kEmpty) {
                if (!written) {
                    for (int i = 0; i < (NW > 0 ? NW : n_words); ++i) candidate_key[i] = key[i];
                    written = true;
                }
                if (cas(slots + h, s, candidate | t)) {
                    created = true;
                    return candidate;
                }
            }
            if ((s & ~id_mask) == t && words_equal<NW>(key_of(s & id_mask), key, n_words)) {
                created = false;
                return s & id_mask;
            }
        }
    }

    void prefetch(std::uint32_t hash) const { __builtin_prefetch(slots + (hash & mask)); }

    // Read-only lookup once the table is complete; kEmpty when absent.
    template <int NW>
    std::uint32_t find(const std::uint32_t* key, std::uint32_t hash) const {
        const std::uint32_t t = tag(hash);
        for (std::size_t h = hash & mask;; h = (h + 1) & mask) {
            const std::uint32_t s = slots[h];
            if (s == kEmpty) return kEmpty;
            if ((s & ~id_mask) == t && words_equal<NW>(key_of(s & id_mask), key, n_words)) return s & id_mask;
        }
    }
};

// Vertices per splat task: small enough that a descheduled thread (a busy machine) does not hold the others up.
constexpr std::int64_t kSplatGrain = 4096;

// `segment(order, lo, hi)` over every axis's chain segments, axis by axis.
template <class Segment>
void blur_axes(const Permutohedral& lat, Segment&& segment) {
    for (int j = 0; j <= lat.dim(); ++j) {
        const std::int32_t* order = lat.chain_order(j);
        parallel_for(lat.blur_segments(), 1, [&](std::int64_t lo, std::int64_t hi) {
            for (std::int64_t s = lo; s < hi; ++s)
                segment(order, lat.segment(j, static_cast<int>(s)), lat.segment(j, static_cast<int>(s) + 1));
        });
    }
}

// Grid rows per band of a grid sweep at least (each band makes 7 rows beyond its own again).
constexpr int kGridBandRows = 48;

// The grid sweep over bands of rows in parallel: filter(view, r0, r1, work) with `work` this thread's workspace of
// kGridWorkRows rows of T (kept for the thread's next sweep).
template <class T, class Filter>
void grid_sweep(const Permutohedral& lat, int pitch, Filter&& filter) {
    const Permutohedral::Grid& g = lat.grid();
    const detail::GridView view{
        g.rows, g.cols, g.parity0, g.row_begin.data(), g.row_end.data(), lat.splat_entries(), lat.splat_begin()};
    const int bands = std::max(1, std::min(g.rows / kGridBandRows, 2 * num_threads()));
    parallel_for(bands, 1, [&](std::int64_t lo, std::int64_t hi) {
        thread_local std::vector<T> work;
        work.resize(static_cast<std::size_t>(detail::kGridWorkRows) * g.cols * pitch);
        for (std::int64_t b = lo; b < hi; ++b)
            filter(view, static_cast<int>(g.rows * b / bands), static_cast<int>(g.rows * (b + 1) / bands), work.data());
    });
}

}  // namespace

void splat_blur(const Permutohedral& lat, const float* in, float* values, int stride) {
    if (lat.grid().rows == 0) {
        splat(lat, in, values, stride);
        blur(lat, values, stride);
        return;
    }
    const detail::Kernels& k = detail::kernels_for(stride);
    grid_sweep<float>(lat, stride, [&](const detail::GridView& view, int r0, int r1, float* work) {
        k.grid_filter(view, r0, r1, in, values, stride, work);
    });
}

void splat_blur(const Permutohedral& lat, const float* in, std::uint16_t* half, int stride, int pitch) {
    if (lat.grid().rows == 0) {
        splat(lat, in, half, stride, pitch);
        blur(lat, half, stride, pitch);
        return;
    }
    const detail::Kernels& k = detail::kernels_for(stride);
    grid_sweep<std::uint16_t>(lat, pitch, [&](const detail::GridView& view, int r0, int r1, std::uint16_t* work) {
        k.grid_filter_half(view, r0, r1, in, half, stride, pitch, work);
    });
}

void splat(const Permutohedral& lat, const float* in, float* values, int stride) {
    const detail::Kernels& k = detail::kernels_for(stride);
    parallel_for(lat.n_rows(), kSplatGrain, [&](std::int64_t lo, std::int64_t hi) {
        k.splat(lat.splat_entries(), lat.splat_begin(), lo, hi, in, values, stride);
    });
}

void blur(const Permutohedral& lat, float* values, int stride) {
    const detail::Kernels& k = detail::kernels_for(stride);
    blur_axes(lat, [&](const std::int32_t* order, std::int64_t lo, std::int64_t hi) {
        k.blur(order, lo, hi, values, stride);
    });
}

bool half_rows_supported(int stride) {
    return detail::kernels_for(stride).blur_half != nullptr;
}

int half_row_pitch(int stride) {
    const int bytes = 2 * stride;  // whole cache lines, or a power of two within one
    int pitch_bytes = 64;
    if (bytes > 64)
        pitch_bytes = (bytes + 63) / 64 * 64;
    else
        while (pitch_bytes / 2 >= bytes) pitch_bytes /= 2;
    return pitch_bytes / 2;
}

void splat(const Permutohedral& lat, const float* in, std::uint16_t* half, int stride, int pitch) {
    const detail::Kernels& k = detail::kernels_for(stride);
    parallel_for(lat.n_rows(), kSplatGrain, [&](std::int64_t lo, std::int64_t hi) {
        k.splat_half(lat.splat_entries(), lat.splat_begin(), lo, hi, in, half, stride, pitch);
    });
}

void blur(const Permutohedral& lat, std::uint16_t* values, int stride, int pitch) {
    const detail::Kernels& k = detail::kernels_for(stride);
    blur_axes(lat, [&](const std::int32_t* order, std::int64_t lo, std::int64_t hi) {
        k.blur_half(order, lo, hi, values, stride, pitch);
    });
}

void Permutohedral::init(const float* features, int dim, std::int64_t n, bool reference_padding) {
    if (dim < 1 || dim > kMaxDim)
        throw std::invalid_argument("the lattice needs 1 to " + std::to_string(kMaxDim) + " feature dimensions, got " +
                                    std::to_string(dim));
    if (n < 0) throw std::invalid_argument("negative number of points");
    if ((n + 1) * (dim + 1) >= (std::int64_t{1} << 30))
        throw std::invalid_argument("too many points x feature dimensions for the lattice (" + std::to_string(n) +
                                    " x " + std::to_string(dim) + ")");
    d_ = dim;
    n_ = n;
    m_ = 0;

    // Per-dimension ranges (also rejects NaN/inf) bound the lattice coordinates.
    std::vector<float> absmax(dim, 0.f);
    std::vector<char> finite(dim, 1);
    parallel_for(dim, 1, [&](std::int64_t lo, std::int64_t hi) {
        for (std::int64_t j = lo; j < hi; ++j) {
            const float* row = features + j * n;
            float mx = 0.f;
            bool ok = true;
            for (std::int64_t i = 0; i < n; ++i) {
                ok &= std::isfinite(row[i]);
                const float a = std::fabs(row[i]);
                mx = a > mx ? a : mx;
            }
            absmax[j] = mx;
            finite[j] = ok;
        }
    });
    for (char ok : finite)
        if (!ok) throw std::invalid_argument("features contain NaN or infinity (is a sigma zero?)");

    // Elevation scale factors as in Adams et al. 2010 / the reference implementation.
    std::vector<float> scale(dim);
    const float inv_std_dev = static_cast<float>(std::sqrt(2.0 / 3.0) * (dim + 1));
    for (int i = 0; i < dim; ++i)
        scale[i] = static_cast<float>(1.0 / std::sqrt(double((i + 2) * (i + 1))) * inv_std_dev);
    double bound = 0.0, tail = 0.0;  // max |elevated coordinate| over the feature box
    for (int j = dim; j >= 0; --j) {
        const double self = j > 0 ? j * double(scale[j - 1]) * absmax[j - 1] : 0.0;
        bound = std::max(bound, tail + self);
        if (j > 0) tail += double(scale[j - 1]) * absmax[j - 1];
    }
    const double key_bound = bound + 4.0 * (dim + 1);
    if (key_bound > kMaxCoordinate)
        throw std::overflow_error("permutohedral lattice coordinates would overflow (max |coordinate| " +
                                  std::to_string(static_cast<long long>(bound)) + " > " +
                                  std::to_string(static_cast<long long>(kMaxCoordinate)) +
                                  "): the features are too large; use larger sigmas or a smaller image");
    const bool pad = reference_padding && (n % 4 != 0);
    const std::int64_t npts = n + (pad ? 1 : 0);
    // The first table holds (d + 1) n / 2 vertices at its 3/4 fill limit: photos make 0.7 to 2.5 vertices per
    // pixel with the 5-d bilateral features (about 1.2 with 2-d positions), and an overflow redoes most of the
    // build. A retry gets room for every entry.
    std::size_t capacity = next_pow2(static_cast<std::size_t>(npts) * (dim + 1) * 2 / 3 + 64);
    for (int attempt = 0;; ++attempt) {
        bool ok;
        const bool small = key_bound < 32000.0;
        switch (dim) {  // common dimensions get fully unrolled code
            case 2:
                ok = small ? build<std::int16_t, 2>(features, pad, scale, capacity)
                           : build<std::int32_t, 2>(features, pad, scale, capacity);
                break;
            case 3:
                ok = small ? build<std::int16_t, 3>(features, pad, scale, capacity)
                           : build<std::int32_t, 3>(features, pad, scale, capacity);
                break;
            case 5:
                ok = small ? build<std::int16_t, 5>(features, pad, scale, capacity)
                           : build<std::int32_t, 5>(features, pad, scale, capacity);
                break;
            default:
                ok = small ? build<std::int16_t, 0>(features, pad, scale, capacity)
                           : build<std::int32_t, 0>(features, pad, scale, capacity);
                break;
        }
        if (ok) break;
        capacity = next_pow2(static_cast<std::size_t>(npts) * (dim + 1) * 4 / 3 + 64);
    }
}

namespace {

// Adding then subtracting 1.5 * 2^23 rounds a float of magnitude < 2^22 to an integer, half to even (as the
// reference's SSE rounding does).
constexpr float kRoundingShift = 12582912.f;

// Elevates point f (d features) onto the lattice and finds its enclosing simplex, as the reference computes it:
// the keys of its d + 1 vertices (packed, n_words each: words + r * n_words), their barycentric weights, and for each
// vertex r the axis along which it steps to the point's vertex r + 1 (mod d + 1; build_chains uses it). canonical[r *
// (d + 1) + c]: the offset of the remainder-r vertex at sorted position c.
template <class Key, int D>
void elevate(const float* f, int d_runtime, const float* scale, const int* canonical, std::uint32_t* words, int n_words,
             float* weights, std::uint8_t* step_axis) {
    const int d = D > 0 ? D : d_runtime, dp1 = d + 1;
    constexpr int kMax = Permutohedral::kMaxDim + 2;
    float elevated[kMax], rem0[kMax], bary[kMax];
    int rank[kMax], axis_of_rank[kMax];
    const float inv_dp1 = 1.0f / dp1, f_dp1 = static_cast<float>(dp1);
    float sm = 0.f;
    for (int j = d; j > 0; --j) {
        const float cf = f[j - 1] * scale[j - 1];
        elevated[j] = sm - static_cast<float>(j) * cf;
        sm += cf;
    }
    elevated[0] = sm;
    // The closest remainder-0 point.
    float sum = 0.f;
    for (int i = 0; i <= d; ++i) {
        const float v = (inv_dp1 * elevated[i] + kRoundingShift) - kRoundingShift;
        rem0[i] = v * f_dp1;
        sum += v;
    }
    std::fill(rank, rank + dp1, 0);
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
    std::fill(bary, bary + d + 2, 0.f);
    for (int i = 0; i <= d; ++i) {
        const float v = (elevated[i] - rem0[i]) * inv_dp1;
        bary[d - rank[i]] += v;
        bary[d - rank[i] + 1] -= v;
    }
    bary[0] += 1.f + bary[d + 1];
    for (int i = 0; i <= d; ++i) axis_of_rank[rank[i]] = i;
    for (int r = 0; r <= d; ++r) {
        pack_words<Key, D>([&](int i) { return static_cast<int>(rem0[i]) + canonical[r * dp1 + rank[i]]; }, d,
                           words + r * n_words);
        weights[r] = bary[r];
        step_axis[r] = static_cast<std::uint8_t>(axis_of_rank[d - r]);
    }
}

}  // namespace

// The hash table and provisional vertex keys of one build attempt. Provisional vertex ids are
// (chunk << local_bits) | index of creation within the chunk, so chunks number their vertices independently.
struct Permutohedral::BuildTables {
    std::size_t capacity;
    int n_words, local_bits = 0;
    std::int64_t n_points, n_chunks;
    LargeVector<std::uint32_t> table;
    LargeVector<std::uint32_t> prov_keys;  // by provisional id; only the first ids of each chunk are written
    std::vector<std::int64_t> base;        // vertices created per chunk, then their prefix sums
    LargeVector<std::uint8_t> axis;        // per entry: the axis along which its vertex steps to the next one
    LargeVector<std::uint32_t> vkeys;      // keys by final id (finalize)

    BuildTables(std::size_t capacity_, int n_words_, std::int64_t n_points_, int dp1, std::int64_t entries)
        : capacity(capacity_), n_words(n_words_), n_points(n_points_), table(capacity_), axis(entries) {
        while ((std::int64_t{1} << local_bits) < kChunk * dp1) ++local_bits;
        n_chunks = (n_points + kChunk - 1) / kChunk;
        base.assign(n_chunks + 1, 0);
        parallel_for(static_cast<std::int64_t>(capacity), 1 << 15, [&](std::int64_t lo, std::int64_t hi) {
            std::fill(table.begin() + lo, table.begin() + hi, kEmpty);
        });
        prov_keys.resize(static_cast<std::size_t>(n_chunks << local_bits) * n_words + 1);  // not zeroed
    }
    // Provisional and final ids are below n_chunks << local_bits; the slot bits above them are the tag.
    std::uint32_t id_mask() const {
        int bits = 1;
        while (bits < 32 && (std::int64_t{1} << bits) <= (n_chunks << local_bits)) ++bits;
        return bits >= 32 ? 0xFFFFFFFFu : (1u << bits) - 1;
    }
    KeyTable keys() { return KeyTable{table.data(), capacity - 1, prov_keys.data(), n_words, id_mask()}; }
};

template <class Key, int D>
bool Permutohedral::build(const float* features, bool pad, const std::vector<float>& scale, std::size_t capacity) {
    const int d = D > 0 ? D : d_, dp1 = d + 1;
    const std::int64_t ne = n_ * dp1;
    offset_.assign(ne, 0);
    slice_w_.assign(ne, 0.f);
    BuildTables tables(capacity, static_cast<int>((sizeof(Key) * d + 3) / 4), n_ + (pad ? 1 : 0), dp1, ne);
    if (!insert<Key, D>(features, scale, tables)) return false;
    finalize(tables);
    grid_ = Grid{};
    const bool grid = D == 2 && grid_allowed_ && build_grid<Key>(tables);
    build_splat();                                                                // from the unscaled weights
    const float alpha = 1.0f / (1.0f + std::pow(2.0f, -static_cast<float>(d_)));  // the reference's scaling
    parallel_for(ne, 1 << 14, [&](std::int64_t lo, std::int64_t hi) {
        for (std::int64_t e = lo; e < hi; ++e) slice_w_[e] *= alpha;
    });
    if (grid) {
        order_ = LargeVector<std::int32_t>();
        segments_.clear();
    } else {
        build_chains<Key, D>(tables);
    }
    return true;
}

// Elevates every point and inserts its vertex keys into the table (lock-free), chunks of points in parallel.
// A point usually shares vertices with the previous one: those are matched without hashing. The rest are hashed a
// batch of points at a time and their slots prefetched (the table is far larger than the caches, so each probe
// would otherwise wait for memory). Writes provisional ids to offset_; false when the table fills up.
template <class Key, int D>
bool Permutohedral::insert(const float* features, const std::vector<float>& scale, BuildTables& tables) {
    const int d = D > 0 ? D : d_, dp1 = d + 1;
    const std::int64_t n = n_, npts = tables.n_points;
    const int n_words = tables.n_words, local_bits = tables.local_bits;
    constexpr int NW = D > 0 ? static_cast<int>((sizeof(Key) * D + 3) / 4) : 0;
    const std::int64_t limit = static_cast<std::int64_t>(tables.capacity * 3 / 4);
    // Threads add their new vertices to the shared count in batches (one contended atomic per vertex
    // costs more than the insert); the unflushed ones stay within half the room above the limit.
    const std::int64_t flush_every = std::max<std::int64_t>(
        1, std::min<std::int64_t>(256, (static_cast<std::int64_t>(tables.capacity) - limit) / (2 * num_threads())));
    std::atomic<std::int64_t> inserted{0};
    std::atomic<bool> overflow{false};
    std::vector<int> canonical(dp1 * dp1);  // canonical[r][c]: remainder-r vertex, sorted position c
    for (int r = 0; r <= d; ++r)
        for (int c = 0; c <= d; ++c) canonical[r * dp1 + c] = c <= d - r ? r : r - dp1;
    KeyTable keys = tables.keys();
    constexpr int kBatch = 16;
    parallel_for(tables.n_chunks, 1, [&](std::int64_t c_lo, std::int64_t c_hi) {
        std::int64_t pending = 0;  // created, not yet added to `inserted`
        float f[kMaxDim];
        const int per_batch = kBatch * dp1;
        std::vector<std::uint32_t> words(static_cast<std::size_t>(per_batch) * n_words), hash(per_batch), id(per_batch);
        std::vector<std::int32_t> same(per_batch);  // earlier entry (same batch) with the same key, or -1
        std::vector<float> weights(per_batch);
        std::vector<std::uint8_t> step_axis(per_batch);
        for (std::int64_t c = c_lo; c < c_hi; ++c) {
            std::uint32_t local = 0;
            const std::int64_t k_begin = c * kChunk, k_end = std::min(npts, (c + 1) * kChunk);
            for (std::int64_t k0 = k_begin; k0 < k_end; k0 += kBatch) {
                if (overflow.load(std::memory_order_relaxed)) return;
                const int count = static_cast<int>(std::min<std::int64_t>(kBatch, k_end - k0));
                for (int b = 0; b < count; ++b) {
                    const std::int64_t k = k0 + b;
                    for (int j = 0; j < d; ++j) f[j] = k < n ? features[static_cast<std::int64_t>(j) * n + k] : 0.f;
                    elevate<Key, D>(f, d, scale.data(), canonical.data(),
                                    words.data() + static_cast<std::size_t>(b) * dp1 * n_words, n_words,
                                    weights.data() + b * dp1, step_axis.data() + b * dp1);
                    for (int r = 0; r <= d; ++r) {
                        const int e = b * dp1 + r;
                        const std::uint32_t* kw = words.data() + static_cast<std::size_t>(e) * n_words;
                        // Vertex r of a simplex has remainder r (every coordinate is r mod d + 1), so it can only be
                        // the previous point's vertex r.
                        same[e] = b > 0 && words_equal<NW>(words.data() + static_cast<std::size_t>(e - dp1) * n_words,
                                                           kw, n_words)
                                      ? e - dp1
                                      : -1;
                        if (same[e] < 0) {
                            hash[e] = hash_words<NW>(kw, n_words);
                            keys.prefetch(hash[e]);
                        }
                    }
                }
                for (int e = 0; e < count * dp1; ++e) {
                    if (same[e] >= 0) {
                        id[e] = id[same[e]];
                    } else {
                        bool created = false;
                        const std::uint32_t candidate = static_cast<std::uint32_t>(c << local_bits) | local;
                        id[e] = keys.find_or_insert<NW>(
                            words.data() + static_cast<std::size_t>(e) * n_words, hash[e], candidate,
                            tables.prov_keys.data() + static_cast<std::size_t>(candidate) * n_words, created);
                        if (created) {
                            ++local;
                            if (++pending == flush_every) {
                                if (inserted.fetch_add(pending, std::memory_order_relaxed) + pending > limit) {
                                    overflow.store(true);
                                    return;
                                }
                                pending = 0;
                            }
                        }
                    }
                    const std::int64_t k = k0 + e / dp1;
                    if (k < n) {
                        offset_[k0 * dp1 + e] = static_cast<std::int32_t>(id[e]);
                        slice_w_[k0 * dp1 + e] = weights[e];
                        tables.axis[k0 * dp1 + e] = step_axis[e];
                    }
                }
            }
            tables.base[c + 1] = local;
        }
        inserted.fetch_add(pending, std::memory_order_relaxed);
    });
    return !overflow.load();
}

// Final ids: chunk bases (prefix sums) + creation index, so vertices keep the points' order; keys by final id.
void Permutohedral::finalize(BuildTables& tables) {
    const std::int64_t n_chunks = tables.n_chunks, ne = n_ * (d_ + 1);
    const int n_words = tables.n_words, local_bits = tables.local_bits;
    std::vector<std::int64_t>& base = tables.base;
    for (std::int64_t c = 0; c < n_chunks; ++c) base[c + 1] += base[c];
    m_ = base[n_chunks];
    const std::uint32_t local_mask = (1u << local_bits) - 1;
    auto final_id = [&](std::uint32_t prov) {
        return static_cast<std::int32_t>(base[prov >> local_bits] + (prov & local_mask));
    };
    parallel_for(ne, 1 << 14, [&](std::int64_t lo, std::int64_t hi) {
        for (std::int64_t e = lo; e < hi; ++e) offset_[e] = final_id(static_cast<std::uint32_t>(offset_[e]));
    });
    LargeVector<std::uint32_t>& table = tables.table;
    const std::uint32_t id_mask = tables.id_mask();
    parallel_for(static_cast<std::int64_t>(tables.capacity), 1 << 15, [&](std::int64_t lo, std::int64_t hi) {
        for (std::int64_t s = lo; s < hi; ++s)
            if (table[s] != kEmpty)
                table[s] = static_cast<std::uint32_t>(final_id(table[s] & id_mask)) | (table[s] & ~id_mask);
    });
    tables.vkeys = LargeVector<std::uint32_t>(static_cast<std::size_t>(m_) * n_words);
    parallel_for(n_chunks, 1, [&](std::int64_t lo, std::int64_t hi) {
        for (std::int64_t c = lo; c < hi; ++c)
            std::copy_n(tables.prov_keys.data() + static_cast<std::size_t>(c << local_bits) * n_words,
                        (base[c + 1] - base[c]) * n_words, tables.vkeys.data() + base[c] * n_words);
    });
    tables.prov_keys = LargeVector<std::uint32_t>();
}

// Blur neighbours: along axis j, vertex v's predecessor is v - (1,..,1) + (d+1) e_j. Looking up every
// predecessor links the vertices into chains, stored in chain order so the blur runs in place.
template <class Key, int D>
void Permutohedral::build_chains(const BuildTables& tables) {
    const int d = D > 0 ? D : d_, dp1 = d + 1;
    const LargeVector<std::uint32_t>& table = tables.table;
    const LargeVector<std::uint32_t>& vkeys = tables.vkeys;
    const LargeVector<std::uint8_t>& axis = tables.axis;
    const int n_words = tables.n_words;
    constexpr int NW = D > 0 ? static_cast<int>((sizeof(Key) * D + 3) / 4) : 0;
    const std::int64_t m = m_;
    KeyTable keys{const_cast<std::uint32_t*>(table.data()), table.size() - 1, vkeys.data(), n_words, tables.id_mask()};
    LargeVector<std::int32_t> next(static_cast<std::size_t>(dp1) * m, -1);
    LargeVector<std::uint8_t> has_pred(static_cast<std::size_t>(dp1) * m, 0);
    // 1. Most links come free from the simplices: a point's vertex r + 1 is the successor of its
    //    vertex r along axis axis[r] (the coordinate whose rank is d - r), cyclically.
    const std::int64_t n = n_;
    parallel_for(n, 4096, [&](std::int64_t lo, std::int64_t hi) {
        for (std::int64_t i = lo; i < hi; ++i)
            for (int r = 0; r <= d; ++r) {
                const std::int64_t e = i * dp1 + r;
                const std::int64_t u = offset_[e], v = offset_[i * dp1 + (r == d ? 0 : r + 1)], j = axis[e];
                // Every point that holds this edge writes the same values.
                __atomic_store_n(&next[j * m + u], static_cast<std::int32_t>(v), __ATOMIC_RELAXED);
                __atomic_store_n(&has_pred[j * m + v], std::uint8_t{1}, __ATOMIC_RELAXED);
            }
    });
    // 2. The other (vertex, axis) pairs look their predecessor up in the table: batched (64 vertices
    //    at a time) with the table slots prefetched.
    constexpr std::int64_t kBatch = 64;
    parallel_for((m + kBatch - 1) / kBatch, 64, [&](std::int64_t lo, std::int64_t hi) {
        Key key[kMaxDim];
        std::vector<std::uint32_t> w(static_cast<std::size_t>(kBatch) * dp1 * n_words), hash(kBatch * dp1);
        std::vector<std::int64_t> from(kBatch * dp1);
        std::vector<int> from_axis(kBatch * dp1);
        for (std::int64_t blk = lo; blk < hi; ++blk) {
            int count = 0;
            for (std::int64_t v = blk * kBatch, end = std::min(m, (blk + 1) * kBatch); v < end; ++v) {
                unpack<Key, D>(vkeys.data() + v * n_words, d, key);
                for (int j = 0; j <= d; ++j) {
                    if (has_pred[j * m + v]) continue;
                    std::uint32_t* kw = w.data() + static_cast<std::size_t>(count) * n_words;
                    // The predecessor along axis j: key - (1, .., 1) + (d + 1) e_j (e_d = 0).
                    pack_words<Key, D>([&](int i) { return key[i] - 1 + (i == j ? dp1 : 0); }, d, kw);
                    hash[count] = hash_words<NW>(kw, n_words);
                    keys.prefetch(hash[count]);
                    from[count] = v;
                    from_axis[count] = j;
                    ++count;
                }
            }
            for (int q = 0; q < count; ++q) {
                const std::uint32_t u = keys.find<NW>(w.data() + static_cast<std::size_t>(q) * n_words, hash[q]);
                if (u == kEmpty) continue;
                const std::int64_t j = from_axis[q], v = from[q];
                __atomic_store_n(&next[j * m + u], static_cast<std::int32_t>(v), __ATOMIC_RELAXED);
                has_pred[j * m + v] = 1;
            }
        }
    });

    // Chains start at vertices without predecessor (in vertex order); each block of heads walks its
    // chains once into a buffer, then the buffers are concatenated. A chain of one vertex is left out: the
    // blur would leave it as it is (old + 0.5 (0 + 0)), and about a quarter of the chain entries of a photo's
    // bilateral lattice are such vertices.
    order_.assign(static_cast<std::size_t>(dp1) * m, 0);
    segments_.assign(static_cast<std::size_t>(dp1) * (kSegments + 1), 0);
    const std::int64_t n_blocks = std::max<std::int64_t>(1, std::min<std::int64_t>(64, m / 4096 + 1));
    std::vector<std::vector<std::int32_t>> walked(static_cast<std::size_t>(dp1) * n_blocks);
    parallel_for(dp1 * n_blocks, 1, [&](std::int64_t lo, std::int64_t hi) {
        for (std::int64_t t = lo; t < hi; ++t) {
            const std::int64_t j = t / n_blocks, b = t % n_blocks;
            std::vector<std::int32_t>& out = walked[t];
            out.reserve(static_cast<std::size_t>(m / n_blocks + 16));
            for (std::int64_t v = m * b / n_blocks, v1 = m * (b + 1) / n_blocks; v < v1; ++v) {
                if (has_pred[j * m + v] || next[j * m + v] < 0) continue;
                for (std::int64_t u = v; u >= 0; u = next[j * m + u])
                    out.push_back(next[j * m + u] >= 0 ? static_cast<std::int32_t>(u) : ~static_cast<std::int32_t>(u));
            }
        }
    });
    std::vector<std::int64_t> entries(dp1, 0);  // per axis: the chain entries kept
    parallel_for(dp1, 1, [&](std::int64_t lo, std::int64_t hi) {
        for (std::int64_t j = lo; j < hi; ++j) {
            std::int32_t* out = order_.data() + j * m;
            for (std::int64_t b = 0; b < n_blocks; ++b) {
                const auto& w = walked[j * n_blocks + b];
                out = std::copy(w.begin(), w.end(), out);
            }
            entries[j] = out - (order_.data() + j * m);
        }
    });
    // Segments for parallel blurs start at chain heads.
    for (int j = 0; j <= d; ++j) {
        const std::int32_t* order = order_.data() + static_cast<std::int64_t>(j) * m;
        const std::int64_t count = entries[j];
        std::int64_t* seg = segments_.data() + static_cast<std::size_t>(j) * (kSegments + 1);
        for (int s = 0; s <= kSegments; ++s) {
            std::int64_t p = std::max<std::int64_t>(count * s / kSegments, s > 0 ? seg[s - 1] : 0);
            while (p > 0 && p < count && order[p - 1] >= 0) ++p;
            seg[s] = p;
        }
        seg[kSegments] = count;
    }
}

// A 2-D lattice whose vertices fill their rows (Permutohedral::Grid) without more than a few empty cells becomes a
// grid: vertex ids become cell indices. False (chains) when some row has a gap or the bounding box is much larger
// than the vertex count (scattered features).
template <class Key>
bool Permutohedral::build_grid(const BuildTables& tables) {
    const std::int64_t m = m_;
    if (m == 0) return false;
    LargeVector<std::int32_t> row_of(static_cast<std::size_t>(m)), col_of(static_cast<std::size_t>(m));
    std::int64_t k2_min = std::numeric_limits<std::int64_t>::max(), k2_max = std::numeric_limits<std::int64_t>::min();
    std::int64_t c_min = k2_min, c_max = k2_max;
    for (std::int64_t v = 0; v < m; ++v) {
        Key key[2];
        unpack<Key, 2>(tables.vkeys.data() + v * tables.n_words, 2, key);
        const std::int64_t k2 = -static_cast<std::int64_t>(key[0]) - key[1];
        const std::int64_t q = (static_cast<std::int64_t>(key[0]) - key[1]) / 3;  // exact: k0 = k1 mod 3
        const std::int64_t c = (q - (k2 & 1)) / 2;                                // exact: q = k2 mod 2
        k2_min = std::min(k2_min, k2);
        k2_max = std::max(k2_max, k2);
        c_min = std::min(c_min, c);
        c_max = std::max(c_max, c);
        row_of[v] = static_cast<std::int32_t>(k2);
        col_of[v] = static_cast<std::int32_t>(c);
    }
    const std::int64_t rows = k2_max - k2_min + 1, cols = c_max - c_min + 1;
    if (rows * cols > m + m / 4 + 1024 || rows * cols >= (std::int64_t{1} << 31) / 2) return false;
    Grid g;
    g.rows = static_cast<int>(rows);
    g.cols = static_cast<int>(cols);
    g.parity0 = static_cast<int>(k2_min & 1);
    g.row_begin.assign(g.rows, std::numeric_limits<std::int32_t>::max());
    g.row_end.assign(g.rows, 0);
    std::vector<std::int32_t> count(g.rows, 0);
    for (std::int64_t v = 0; v < m; ++v) {
        const std::int32_t r = static_cast<std::int32_t>(row_of[v] - k2_min),
                           c = static_cast<std::int32_t>(col_of[v] - c_min);
        row_of[v] = r;
        col_of[v] = c;
        g.row_begin[r] = std::min(g.row_begin[r], c);
        g.row_end[r] = std::max(g.row_end[r], c + 1);
        ++count[r];
    }
    for (int r = 0; r < g.rows; ++r) {
        if (count[r] == 0) g.row_begin[r] = g.row_end[r] = 0;
        if (g.row_end[r] - g.row_begin[r] != count[r]) return false;  // a gap: some cell would not be a vertex
    }
    parallel_for(n_ * (d_ + 1), 1 << 14, [&](std::int64_t lo, std::int64_t hi) {
        for (std::int64_t e = lo; e < hi; ++e) {
            const std::int32_t v = offset_[e];
            offset_[e] = row_of[v] * g.cols + col_of[v];
        }
    });
    grid_ = std::move(g);
    return true;
}

// The entries by vertex: a counting sort that keeps each vertex's points in point order. Each thread counts and
// then places the entries of its own range of points; a vertex's entries from lower point ranges come first.
void Permutohedral::build_splat() {
    const int dp1 = d_ + 1;
    const std::int64_t m = n_rows(), n = n_;
    splat_begin_.assign(static_cast<std::size_t>(m) + 1, 0);
    splat_ = LargeVector<SplatEntry>(static_cast<std::size_t>(n * dp1));
    std::int32_t* begin = splat_begin_.data();
    const std::int64_t parts = std::min<std::int64_t>(num_threads(), std::max<std::int64_t>(1, n / 16384));
    const auto first_point = [&](std::int64_t t) { return n * t / parts; };
    // cursor[t * m + v]: part t's count of vertex v's entries, then the place of its next one.
    LargeVector<std::int32_t> cursor(static_cast<std::size_t>(parts * m));
    parallel_for(parts, 1, [&](std::int64_t lo, std::int64_t hi) {
        for (std::int64_t t = lo; t < hi; ++t) {
            std::int32_t* count = cursor.data() + t * m;
            std::fill(count, count + m, 0);
            for (std::int64_t e = first_point(t) * dp1; e < first_point(t + 1) * dp1; ++e) ++count[offset_[e]];
        }
    });
    parallel_for(m, 1 << 14, [&](std::int64_t lo, std::int64_t hi) {
        for (std::int64_t v = lo; v < hi; ++v) {
            std::int32_t total = 0;
            for (std::int64_t t = 0; t < parts; ++t) total += cursor[t * m + v];
            begin[v + 1] = total;
        }
    });
    for (std::int64_t v = 0; v < m; ++v) begin[v + 1] += begin[v];
    parallel_for(m, 1 << 14, [&](std::int64_t lo, std::int64_t hi) {
        for (std::int64_t v = lo; v < hi; ++v) {
            std::int32_t place = begin[v];
            for (std::int64_t t = 0; t < parts; ++t) {
                const std::int32_t count = cursor[t * m + v];
                cursor[t * m + v] = place;
                place += count;
            }
        }
    });
    parallel_for(parts, 1, [&](std::int64_t lo, std::int64_t hi) {
        for (std::int64_t t = lo; t < hi; ++t) {
            std::int32_t* place = cursor.data() + t * m;
            for (std::int64_t i = first_point(t); i < first_point(t + 1); ++i)
                for (int r = 0; r < dp1; ++r) {
                    const std::int64_t e = i * dp1 + r;
                    splat_[place[offset_[e]]++] = {static_cast<std::int32_t>(i), slice_w_[e]};
                }
        }
    });
}

void Permutohedral::scale_weights(const float* splat_scale, const float* slice_scale) {
    const int dp1 = d_ + 1;
    if (slice_scale)
        parallel_for(n_, 4096, [&](std::int64_t lo, std::int64_t hi) {
            for (std::int64_t i = lo; i < hi; ++i)
                for (int r = 0; r < dp1; ++r) slice_w_[i * dp1 + r] *= slice_scale[i];
        });
    if (splat_scale)
        parallel_for(static_cast<std::int64_t>(splat_.size()), 1 << 14, [&](std::int64_t lo, std::int64_t hi) {
            for (std::int64_t k = lo; k < hi; ++k) splat_[k].weight *= splat_scale[splat_[k].point];
        });
}

void Permutohedral::compute(const float* in, float* out, int value_size) const {
    if (value_size < 1) throw std::invalid_argument("value_size must be >= 1");
    if (value_size == 1 && grid_.rows == 0) {
        compute_scalar(in, out);
        return;
    }
    const int stride = value_size <= 4 ? 4 : (value_size + 7) / 8 * 8;  // 4: the 4-lane kernels
    LargeVector<float> padded(static_cast<std::size_t>(n_) * stride),
        values(static_cast<std::size_t>(n_rows()) * stride);
    parallel_for(n_, 4096, [&](std::int64_t lo, std::int64_t hi) {
        for (std::int64_t i = lo; i < hi; ++i) {
            float* row = std::copy_n(in + i * value_size, value_size, padded.data() + i * stride);
            std::fill(row, padded.data() + (i + 1) * stride, 0.f);
        }
    });
    splat_blur(*this, padded.data(), values.data(), stride);
    const int dp1 = d_ + 1;
    parallel_for(n_, 1024, [&](std::int64_t lo, std::int64_t hi) {
        for (std::int64_t i = lo; i < hi; ++i) {
            float* o = out + i * value_size;
            std::fill(o, o + value_size, 0.f);
            for (int r = 0; r < dp1; ++r) {
                const float w = slice_w_[i * dp1 + r];
                const float* src = values.data() + static_cast<std::int64_t>(offset_[i * dp1 + r]) * stride;
                for (int c = 0; c < value_size; ++c) o[c] += w * src[c];
            }
        }
    });
}

// compute() for one value per point along chains (a kernel's normalisation): a float per vertex instead of a padded
// row of 4, so the blur's scattered reads stay in the caches; the same arithmetic in the same order as lane 0 of the
// 4-lane kernels. Written out rather than the row kernels instantiated for one lane, which took 8.0 against 4.9 ms
// for building's bilateral normalisation on 2 threads.
void Permutohedral::compute_scalar(const float* in, float* out) const {
    LargeVector<float> values(static_cast<std::size_t>(m_));
    parallel_for(m_, kSplatGrain, [&](std::int64_t lo, std::int64_t hi) {
        for (std::int64_t v = lo; v < hi; ++v) {
            float acc = 0.f;
            for (std::int32_t e = splat_begin_[v]; e < splat_begin_[v + 1]; ++e)
                acc = acc + splat_[e].weight * in[splat_[e].point];
            values[v] = acc;
        }
    });
    blur_axes(*this, [&](const std::int32_t* order, std::int64_t lo, std::int64_t hi) {
        float prev = 0.f;
        for (std::int64_t pos = lo; pos < hi; ++pos) {
            const std::int32_t raw = order[pos];
            float& cur = values[raw < 0 ? ~raw : raw];
            const float old = cur;
            if (raw < 0) {  // the end of a chain: no successor
                cur = old + 0.5f * (prev + 0.f);
                prev = 0.f;
            } else {
                const std::int32_t next = order[pos + 1];
                cur = old + 0.5f * (prev + values[next < 0 ? ~next : next]);
                prev = old;
            }
        }
    });
    const int dp1 = d_ + 1;
    parallel_for(n_, 1024, [&](std::int64_t lo, std::int64_t hi) {
        for (std::int64_t i = lo; i < hi; ++i) {
            float o = 0.f;
            for (int r = 0; r < dp1; ++r) o += slice_w_[i * dp1 + r] * values[offset_[i * dp1 + r]];
            out[i] = o;
        }
    });
}

std::size_t Permutohedral::memory_bytes() const {
    return (offset_.size() + slice_w_.size() + splat_begin_.size() + order_.size() + grid_.row_begin.size() +
            grid_.row_end.size()) *
               4 +
           splat_.size() * sizeof(SplatEntry) + segments_.size() * 8;
}

}  // namespace deeplab::crf
