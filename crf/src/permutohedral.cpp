#include "crf/permutohedral.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <memory>
#include <stdexcept>
#include <string>

#include "parallel.hpp"
#include "simd.hpp"

namespace deeplab::crf {
namespace {

using detail::parallel_for;
constexpr std::uint32_t kEmpty = 0xFFFFFFFFu;
// Lattice coordinates up to 2^18 keep the float barycentric weights accurate to ~0.5 %.
constexpr double kMaxCoordinate = 262144.0;

inline std::uint32_t fmix32(std::uint32_t h) {
    h ^= h >> 16;
    h *= 0x85ebca6bu;
    h ^= h >> 13;
    h *= 0xc2b2ae35u;
    h ^= h >> 16;
    return h;
}

template <class Key>
inline std::uint32_t hash_key(const Key* k, int d) {
    std::uint32_t h = 0x811c9dc5u;
    for (int i = 0; i < d; ++i) h = (h ^ static_cast<std::uint32_t>(static_cast<std::int32_t>(k[i]))) * 0x01000193u;
    return fmix32(h);
}

template <class Key>
inline bool keys_equal(const Key* a, const Key* b, int d) {
    for (int i = 0; i < d; ++i)
        if (a[i] != b[i]) return false;
    return true;
}

std::size_t next_pow2(std::size_t v) {
    std::size_t p = 16;
    while (p < v) p <<= 1;
    return p;
}

// Lock-free insert-only open-addressing table of indices into an external key array.
struct AtomicTable {
    std::unique_ptr<std::atomic<std::uint32_t>[]> slots;
    std::size_t mask = 0;

    explicit AtomicTable(std::size_t min_capacity) {
        const std::size_t cap = next_pow2(min_capacity);
        slots.reset(new std::atomic<std::uint32_t>[cap]);
        mask = cap - 1;
        parallel_for(static_cast<std::int64_t>(cap), 1 << 16, [&](std::int64_t lo, std::int64_t hi) {
            for (std::int64_t i = lo; i < hi; ++i) slots[i].store(kEmpty, std::memory_order_relaxed);
        });
    }

    // Inserts index e (whose key is keys + e*d); returns the slot. When the key is present, the slot
    // keeps the smallest index holding it, so the result does not depend on thread timing.
    template <class Key>
    std::size_t insert_min(std::uint32_t e, std::uint32_t hash, const Key* keys, int d) {
        const Key* ke = keys + static_cast<std::size_t>(e) * d;
        std::size_t h = hash & mask;
        for (;;) {
            std::uint32_t cur = slots[h].load(std::memory_order_acquire);
            if (cur == kEmpty) {
                if (slots[h].compare_exchange_strong(cur, e, std::memory_order_acq_rel)) return h;
            }
            if (keys_equal(keys + static_cast<std::size_t>(cur) * d, ke, d)) {
                while (e < cur && !slots[h].compare_exchange_weak(cur, e, std::memory_order_acq_rel)) {
                }
                return h;
            }
            h = (h + 1) & mask;
        }
    }

    template <class Key>
    std::uint32_t find(const Key* k, std::uint32_t hash, const Key* keys, int d) const {
        std::size_t h = hash & mask;
        for (;;) {
            const std::uint32_t cur = slots[h].load(std::memory_order_relaxed);
            if (cur == kEmpty) return kEmpty;
            if (keys_equal(keys + static_cast<std::size_t>(cur) * d, k, d)) return cur;
            h = (h + 1) & mask;
        }
    }
};

// ---- filtering kernels, specialised on the row stride ----

template <int S>
void splat_rows(const Permutohedral& lat, const float* in, float* values, int stride_rt, std::int64_t lo,
                std::int64_t hi) {
    const int stride = S > 0 ? S : stride_rt;
    const std::int32_t* start = lat.csr_start();
    const std::int32_t* pix = lat.csr_pix();
    const float* w = lat.csr_w();
    for (std::int64_t v = lo; v < hi; ++v) {
        float* out = values + v * stride;
        if constexpr (S > 0) {
            float acc[S] = {};
            for (std::int32_t k = start[v]; k < start[v + 1]; ++k) {
                const float wk = w[k];
                const float* x = in + static_cast<std::int64_t>(pix[k]) * S;
                for (int c = 0; c < S; ++c) acc[c] += wk * x[c];
            }
            for (int c = 0; c < S; ++c) out[c] = acc[c];
        } else {
            for (int c = 0; c < stride; ++c) out[c] = 0.f;
            for (std::int32_t k = start[v]; k < start[v + 1]; ++k) {
                const float wk = w[k];
                const float* x = in + static_cast<std::int64_t>(pix[k]) * stride;
                for (int c = 0; c < stride; ++c) out[c] += wk * x[c];
            }
        }
    }
}

template <int S>
void blur_rows(const std::int32_t* nbr, const float* in, float* out, int stride_rt, std::int64_t lo, std::int64_t hi) {
    const int stride = S > 0 ? S : stride_rt;
    for (std::int64_t v = lo; v < hi; ++v) {
        const float* a = in + static_cast<std::int64_t>(nbr[2 * v]) * stride;
        const float* b = in + static_cast<std::int64_t>(nbr[2 * v + 1]) * stride;
        const float* o = in + v * stride;
        float* r = out + v * stride;
        for (int c = 0; c < stride; ++c) r[c] = o[c] + 0.5f * (a[c] + b[c]);
    }
}

}  // namespace

void splat(const Permutohedral& lat, const float* in, float* values, int stride) {
    const std::int64_t m = lat.n_vertices();
    detail::dispatch_stride(stride, [&](auto s) {
        constexpr int S = decltype(s)::value;
        parallel_for(m, 1024, [&](std::int64_t lo, std::int64_t hi) { splat_rows<S>(lat, in, values, stride, lo, hi); });
    });
    std::fill(values + m * stride, values + (m + 1) * stride, 0.f);
}

float* blur(const Permutohedral& lat, float* values, float* tmp, int stride) {
    const std::int64_t m = lat.n_vertices();
    std::fill(tmp + m * stride, tmp + (m + 1) * stride, 0.f);
    detail::dispatch_stride(stride, [&](auto s) {
        constexpr int S = decltype(s)::value;
        for (int j = 0; j <= lat.dim(); ++j) {
            const std::int32_t* nbr = lat.neighbors() + static_cast<std::int64_t>(j) * m * 2;
            parallel_for(m, 2048, [&](std::int64_t lo, std::int64_t hi) { blur_rows<S>(nbr, values, tmp, stride, lo, hi); });
            std::swap(values, tmp);
        }
    });
    return values;
}

void Permutohedral::init(const float* features, int dim, std::int64_t n, bool reference_padding) {
    if (dim < 1) throw std::invalid_argument("the lattice needs at least one feature dimension");
    if (n < 0) throw std::invalid_argument("negative number of points");
    if ((n + 1) * (dim + 1) >= std::numeric_limits<std::int32_t>::max())
        throw std::invalid_argument("too many points x feature dimensions for the lattice (" + std::to_string(n) +
                                    " x " + std::to_string(dim) + ")");
    d_ = dim;
    n_ = n;
    m_ = 0;

    // Per-dimension ranges (also rejects NaN/inf) give a bound on the lattice coordinates.
    std::vector<double> absmax(dim, 0.0);
    bool finite = true;
    for (int j = 0; j < dim; ++j) {
        const float* row = features + static_cast<std::int64_t>(j) * n;
        float mx = 0.f;
        bool ok = true;
        for (std::int64_t i = 0; i < n; ++i) {
            const float a = std::fabs(row[i]);
            ok &= std::isfinite(row[i]);
            mx = a > mx ? a : mx;
        }
        finite &= ok;
        absmax[j] = mx;
    }
    if (!finite) throw std::invalid_argument("features contain NaN or infinity (is a sigma zero?)");

    // Elevation: scale_factor as in Adams et al. 2010 / the reference implementation.
    std::vector<float> scale(dim);
    const float inv_std_dev = static_cast<float>(std::sqrt(2.0 / 3.0) * (dim + 1));
    for (int i = 0; i < dim; ++i) scale[i] = static_cast<float>(1.0 / std::sqrt(double((i + 2) * (i + 1))) * inv_std_dev);
    double bound = 0.0;  // max |elevated coordinate|
    {
        double tail = 0.0;  // sum_{i>=j} scale_i * |f_i|
        for (int j = dim; j >= 0; --j) {
            const double self = j > 0 ? j * scale[j - 1] * absmax[j - 1] : 0.0;
            bound = std::max(bound, tail + self);
            if (j > 0) tail += scale[j - 1] * absmax[j - 1];
        }
    }
    const double key_bound = bound + 4.0 * (dim + 1);
    if (key_bound > kMaxCoordinate)
        throw std::overflow_error("permutohedral lattice coordinates would overflow (max |coordinate| " +
                                  std::to_string(static_cast<long long>(bound)) + " > " +
                                  std::to_string(static_cast<long long>(kMaxCoordinate)) +
                                  "): the features are too large; use larger sigmas or a smaller image");
    if (key_bound < 32000.0)
        build<std::int16_t>(features, reference_padding && (n % 4 != 0), scale);
    else
        build<std::int32_t>(features, reference_padding && (n % 4 != 0), scale);
}

template <class Key>
void Permutohedral::build(const float* features, bool pad, const std::vector<float>& scale) {
    const int d = d_, dp1 = d_ + 1;
    const std::int64_t n = n_;
    const std::int64_t npts = n + (pad ? 1 : 0);
    const std::int64_t ne = npts * dp1;        // lattice entries incl. the padding point
    const std::int64_t ne_real = n * dp1;

    std::vector<Key> keys(static_cast<std::size_t>(ne) * d);
    std::vector<std::uint32_t> hashes(ne);
    offset_.assign(ne_real, 0);
    slice_w_.assign(ne_real, 0.f);

    // canonical[r][c]: coordinate of the remainder-r vertex of the canonical simplex, sorted position c.
    std::vector<int> canonical(dp1 * dp1);
    for (int r = 0; r <= d; ++r)
        for (int c = 0; c <= d; ++c) canonical[r * dp1 + c] = c <= d - r ? r : r - dp1;

    const float inv_dp1 = 1.0f / dp1;
    const float f_dp1 = static_cast<float>(dp1);

    // 1. Elevate every point, find its simplex, barycentric weights and the keys of its d+1 vertices.
    parallel_for(npts, 1024, [&](std::int64_t lo, std::int64_t hi) {
        std::vector<float> f(d), elevated(dp1), rem0(dp1), bary(d + 2);
        std::vector<int> rank(dp1);
        for (std::int64_t k = lo; k < hi; ++k) {
            for (int j = 0; j < d; ++j) f[j] = k < n ? features[static_cast<std::int64_t>(j) * n + k] : 0.f;
            float sm = 0.f;
            for (int j = d; j > 0; --j) {
                const float cf = f[j - 1] * scale[j - 1];
                elevated[j] = sm - static_cast<float>(j) * cf;
                sm += cf;
            }
            elevated[0] = sm;
            // Closest remainder-0 point (round half to even, as the reference's SSE path).
            float sum = 0.f;
            for (int i = 0; i <= d; ++i) {
                const float v = std::nearbyint(inv_dp1 * elevated[i]);
                rem0[i] = v * f_dp1;
                sum += v;
            }
            std::fill(rank.begin(), rank.end(), 0);
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
            std::fill(bary.begin(), bary.end(), 0.f);
            for (int i = 0; i <= d; ++i) {
                const float v = (elevated[i] - rem0[i]) * inv_dp1;
                bary[d - rank[i]] += v;
                bary[d - rank[i] + 1] -= v;
            }
            bary[0] += 1.f + bary[d + 1];
            for (int r = 0; r <= d; ++r) {
                const std::int64_t e = k * dp1 + r;
                Key* key = keys.data() + e * d;
                for (int i = 0; i < d; ++i)
                    key[i] = static_cast<Key>(static_cast<int>(rem0[i]) + canonical[r * dp1 + rank[i]]);
                hashes[e] = hash_key(key, d);
                if (k < n) slice_w_[e] = bary[r];
            }
        }
    });

    // 2. Deduplicate the vertex keys (parallel, lock-free). Each slot ends up holding the first entry
    //    with its key, so vertices are numbered in order of first appearance, as in the reference.
    std::vector<std::uint32_t> slot_of(ne);
    AtomicTable table(static_cast<std::size_t>(ne) * 2);
    parallel_for(ne, 4096, [&](std::int64_t lo, std::int64_t hi) {
        for (std::int64_t e = lo; e < hi; ++e)
            slot_of[e] = static_cast<std::uint32_t>(
                table.insert_min(static_cast<std::uint32_t>(e), hashes[e], keys.data(), d));
    });

    // 3. Number the vertices: prefix sum over fixed blocks of entries (deterministic).
    const std::int64_t block = 1 << 14;
    const std::int64_t n_blocks = (ne + block - 1) / block;
    std::vector<std::int64_t> block_base(n_blocks + 1, 0);
    auto is_first = [&](std::int64_t e) { return table.slots[slot_of[e]].load(std::memory_order_relaxed) == e; };
    parallel_for(n_blocks, 1, [&](std::int64_t lo, std::int64_t hi) {
        for (std::int64_t b = lo; b < hi; ++b) {
            std::int64_t c = 0;
            for (std::int64_t e = b * block, end = std::min(ne, (b + 1) * block); e < end; ++e) c += is_first(e);
            block_base[b + 1] = c;
        }
    });
    for (std::int64_t b = 0; b < n_blocks; ++b) block_base[b + 1] += block_base[b];
    m_ = block_base[n_blocks];
    const std::int64_t m = m_;
    std::vector<Key> vkeys(static_cast<std::size_t>(m) * d);
    std::vector<std::uint32_t> vhash(m);
    // hashes[e] of a first entry becomes its vertex id (the hash moves to vhash).
    parallel_for(n_blocks, 1, [&](std::int64_t lo, std::int64_t hi) {
        for (std::int64_t b = lo; b < hi; ++b) {
            std::int64_t vid = block_base[b];
            for (std::int64_t e = b * block, end = std::min(ne, (b + 1) * block); e < end; ++e) {
                if (!is_first(e)) continue;
                std::copy_n(keys.data() + e * d, d, vkeys.data() + vid * d);
                vhash[vid] = hashes[e];
                hashes[e] = static_cast<std::uint32_t>(vid);
                ++vid;
            }
        }
    });
    parallel_for(ne_real, 4096, [&](std::int64_t lo, std::int64_t hi) {
        for (std::int64_t e = lo; e < hi; ++e)
            offset_[e] = static_cast<std::int32_t>(hashes[table.slots[slot_of[e]].load(std::memory_order_relaxed)]);
    });
    {  // free the entry-sized temporaries before allocating the vertex structures
        std::vector<Key>().swap(keys);
        std::vector<std::uint32_t>().swap(hashes);
        std::vector<std::uint32_t>().swap(slot_of);
        table.slots.reset();
    }

    // 4. Blur neighbours: a compact table over the vertices, then 2(d+1) lookups per vertex.
    AtomicTable vtable(static_cast<std::size_t>(m) * 2 + 1);
    parallel_for(m, 4096, [&](std::int64_t lo, std::int64_t hi) {
        for (std::int64_t v = lo; v < hi; ++v) {
            std::size_t h = vhash[v] & vtable.mask;
            for (;;) {
                std::uint32_t cur = kEmpty;
                if (vtable.slots[h].compare_exchange_strong(cur, static_cast<std::uint32_t>(v), std::memory_order_acq_rel))
                    break;
                h = (h + 1) & vtable.mask;
            }
        }
    });
    nbr_.assign(static_cast<std::size_t>(dp1) * m * 2, 0);
    parallel_for(m, 1024, [&](std::int64_t lo, std::int64_t hi) {
        std::vector<Key> n1(d), n2(d);
        for (std::int64_t v = lo; v < hi; ++v) {
            const Key* key = vkeys.data() + v * d;
            for (int j = 0; j <= d; ++j) {
                for (int k = 0; k < d; ++k) {
                    n1[k] = static_cast<Key>(key[k] - 1);
                    n2[k] = static_cast<Key>(key[k] + 1);
                }
                if (j < d) {
                    n1[j] = static_cast<Key>(key[j] + d);
                    n2[j] = static_cast<Key>(key[j] - d);
                }
                const std::uint32_t a = vtable.find(n1.data(), hash_key(n1.data(), d), vkeys.data(), d);
                const std::uint32_t b = vtable.find(n2.data(), hash_key(n2.data(), d), vkeys.data(), d);
                std::int32_t* out = nbr_.data() + (static_cast<std::int64_t>(j) * m + v) * 2;
                out[0] = a == kEmpty ? static_cast<std::int32_t>(m) : static_cast<std::int32_t>(a);
                out[1] = b == kEmpty ? static_cast<std::int32_t>(m) : static_cast<std::int32_t>(b);
            }
        }
    });
    vtable.slots.reset();

    // 5. Transposed (vertex -> points) structure so the splat is a parallel gather, summed in point order.
    csr_start_.assign(m + 1, 0);
    {
        std::unique_ptr<std::atomic<std::int32_t>[]> count(new std::atomic<std::int32_t>[m + 1]);
        parallel_for(m + 1, 1 << 16, [&](std::int64_t lo, std::int64_t hi) {
            for (std::int64_t v = lo; v < hi; ++v) count[v].store(0, std::memory_order_relaxed);
        });
        parallel_for(ne_real, 4096, [&](std::int64_t lo, std::int64_t hi) {
            for (std::int64_t e = lo; e < hi; ++e) count[offset_[e]].fetch_add(1, std::memory_order_relaxed);
        });
        for (std::int64_t v = 0; v < m; ++v) csr_start_[v + 1] = csr_start_[v] + count[v].load(std::memory_order_relaxed);
        parallel_for(m, 1 << 14, [&](std::int64_t lo, std::int64_t hi) {
            for (std::int64_t v = lo; v < hi; ++v) count[v].store(csr_start_[v], std::memory_order_relaxed);
        });
        csr_pix_.assign(ne_real, 0);
        csr_w_.assign(ne_real, 0.f);
        parallel_for(ne_real, 4096, [&](std::int64_t lo, std::int64_t hi) {
            for (std::int64_t e = lo; e < hi; ++e) {
                const std::int32_t pos = count[offset_[e]].fetch_add(1, std::memory_order_relaxed);
                csr_pix_[pos] = static_cast<std::int32_t>(e / dp1);
                csr_w_[pos] = slice_w_[e];
            }
        });
    }
    parallel_for(m, 1024, [&](std::int64_t lo, std::int64_t hi) {
        for (std::int64_t v = lo; v < hi; ++v) {  // insertion sort: lists are short
            for (std::int32_t a = csr_start_[v] + 1; a < csr_start_[v + 1]; ++a) {
                const std::int32_t p = csr_pix_[a];
                const float w = csr_w_[a];
                std::int32_t b = a;
                for (; b > csr_start_[v] && csr_pix_[b - 1] > p; --b) {
                    csr_pix_[b] = csr_pix_[b - 1];
                    csr_w_[b] = csr_w_[b - 1];
                }
                csr_pix_[b] = p;
                csr_w_[b] = w;
            }
        }
    });

    // The slice carries the reference's magic scaling alpha = 1 / (1 + 2^-d).
    const float alpha = 1.0f / (1.0f + std::pow(2.0f, -static_cast<float>(d)));
    parallel_for(ne_real, 1 << 14, [&](std::int64_t lo, std::int64_t hi) {
        for (std::int64_t e = lo; e < hi; ++e) slice_w_[e] *= alpha;
    });
}

void Permutohedral::scale_weights(const float* splat_scale, const float* slice_scale) {
    const int dp1 = d_ + 1;
    if (splat_scale)
        parallel_for(static_cast<std::int64_t>(csr_pix_.size()), 1 << 14, [&](std::int64_t lo, std::int64_t hi) {
            for (std::int64_t k = lo; k < hi; ++k) csr_w_[k] *= splat_scale[csr_pix_[k]];
        });
    if (slice_scale)
        parallel_for(n_, 4096, [&](std::int64_t lo, std::int64_t hi) {
            for (std::int64_t i = lo; i < hi; ++i)
                for (int r = 0; r < dp1; ++r) slice_w_[i * dp1 + r] *= slice_scale[i];
        });
}

void Permutohedral::compute(const float* in, float* out, int value_size) const {
    if (value_size < 1) throw std::invalid_argument("value_size must be >= 1");
    const std::size_t rows = static_cast<std::size_t>(m_ + 1) * value_size;
    std::vector<float> values(rows), tmp(rows);
    splat(*this, in, values.data(), value_size);
    const float* v = blur(*this, values.data(), tmp.data(), value_size);
    const int dp1 = d_ + 1;
    parallel_for(n_, 1024, [&](std::int64_t lo, std::int64_t hi) {
        for (std::int64_t i = lo; i < hi; ++i) {
            float* o = out + i * value_size;
            std::fill(o, o + value_size, 0.f);
            for (int r = 0; r < dp1; ++r) {
                const float w = slice_w_[i * dp1 + r];
                const float* src = v + static_cast<std::int64_t>(offset_[i * dp1 + r]) * value_size;
                for (int c = 0; c < value_size; ++c) o[c] += w * src[c];
            }
        }
    });
}

std::size_t Permutohedral::memory_bytes() const {
    return offset_.size() * 4 + slice_w_.size() * 4 + csr_start_.size() * 4 + csr_pix_.size() * 4 +
           csr_w_.size() * 4 + nbr_.size() * 4;
}

}  // namespace deeplab::crf
