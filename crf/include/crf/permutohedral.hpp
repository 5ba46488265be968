// Permutohedral lattice (Adams, Baek & Davis 2010) for high-dimensional Gaussian filtering.
//
// Same lattice, barycentric weights, blur and slice scaling as the reference dense CRF code
// (Krähenbühl & Koltun 2011, as shipped in pydensecrf), so filtered values agree with it to float
// rounding. Built once per feature set (in parallel); filtering allocates nothing. Values are rows of
// `stride` floats (a multiple of 4), one row per point or lattice vertex.
#pragma once

#include <cstdint>
#include <vector>

#include "crf/large_alloc.hpp"

namespace deeplab::crf {

class Permutohedral {
  public:
    static constexpr int kMaxDim = 32;

    // features: `dim` x `n` floats (1 <= dim <= kMaxDim), one row per feature dimension (the layout
    // pydensecrf takes).
    // Throws std::invalid_argument for non-finite features or bad sizes, std::overflow_error when the
    // lattice coordinates would not be representable (features too large, e.g. a tiny sigma).
    // `reference_padding` reproduces a quirk of pydensecrf's SSE build: when n is not a multiple of
    // 4 the lattice also holds the vertices of a zero feature vector (they only take part in the blur).
    void init(const float* features, int dim, std::int64_t n, bool reference_padding = true);

    // out = slice(blur(splat(in))) for value_size values per point (point-major): the reference's
    // compute() with the default weights. Allocates its own workspace.
    void compute(const float* in, float* out, int value_size) const;

    // Scale the splat weights by splat_scale[point] and the slice weights by slice_scale[point]
    // (either may be null): folds kernel normalisations and label weights into the lattice.
    void scale_weights(const float* splat_scale, const float* slice_scale);

    int dim() const { return d_; }
    std::int64_t n_points() const { return n_; }
    std::int64_t n_vertices() const { return m_; }
    std::size_t memory_bytes() const;

    // Layout read by the filtering kernels. Point i touches vertices offsets()[i*(d+1) + r] with
    // slice weights slice_weights()[i*(d+1) + r].
    const std::int32_t* offsets() const { return offset_.data(); }
    const float* slice_weights() const { return slice_w_.data(); }

    struct SplatEntry {
        std::int32_t point;
        float weight;
    };
    // The splat as a gather: vertex v sums the entries [splat_begin()[v], splat_begin()[v + 1]) of
    // splat_entries(), in point order (the reference's order of summation). A vertex without entries (only
    // the reference padding makes them) gets zero. Every vertex is independent: any split gives the same bits.
    const SplatEntry* splat_entries() const { return splat_.data(); }
    const std::int32_t* splat_begin() const { return splat_begin_.data(); }
    // Blur along axis j: vertices in chain order (a chain's last vertex is stored as ~v; chains of one
    // vertex, which the blur leaves unchanged, are not listed), cut into blur_segments() independent
    // segments: [segment(j, s), segment(j, s+1)).
    const std::int32_t* chain_order(int j) const { return order_.data() + static_cast<std::int64_t>(j) * m_; }
    int blur_segments() const { return kSegments; }
    std::int64_t segment(int j, int s) const { return segments_[static_cast<std::size_t>(j) * (kSegments + 1) + s]; }

  private:
    static constexpr int kSegments = 64;
    struct BuildTables;
    // One build attempt with a hash table of `capacity` slots (false: too small): insert, finalize, build_chains.
    template <class Key, int D>
    bool build(const float* features, bool pad, const std::vector<float>& scale, std::size_t capacity);
    template <class Key, int D>
    bool insert(const float* features, const std::vector<float>& scale, BuildTables& tables);
    void finalize(BuildTables& tables);
    template <class Key, int D>
    void build_chains(const BuildTables& tables);
    void build_splat();

    int d_ = 0;
    std::int64_t n_ = 0, m_ = 0;
    LargeVector<std::int32_t> offset_;
    LargeVector<float> slice_w_;
    LargeVector<SplatEntry> splat_;
    LargeVector<std::int32_t> splat_begin_;
    LargeVector<std::int32_t> order_;
    std::vector<std::int64_t> segments_;
};

// Splat `in` (n x stride) onto the vertices: values (m x stride).
void splat(const Permutohedral& lat, const float* in, float* values, int stride);
// Blur the vertex values along every axis (forward order), in place.
void blur(const Permutohedral& lat, float* values, int stride);

// Half-precision vertex rows (IEEE binary16, `half_row_pitch(stride)` halves per row, arithmetic in
// float): the splat sums in float, its rows are rounded once to half, then the blur and the slice read
// and write half the bytes. Where this CPU converts in vector instructions (x86-64 with AVX2 and
// F16C, AArch64).
bool half_rows_supported(int stride);
int half_row_pitch(int stride);
// splat() with each vertex's sum rounded once to half precision, into `half` (m rows of `pitch` halves).
void splat(const Permutohedral& lat, const float* in, std::uint16_t* half, int stride, int pitch);
void blur(const Permutohedral& lat, std::uint16_t* values, int stride, int pitch);

}  // namespace deeplab::crf
