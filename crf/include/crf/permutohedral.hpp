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
    // Rows of vertex values that filtering reads and writes: n_vertices(), or the grid's cells (below).
    std::int64_t n_rows() const { return grid_.rows > 0 ? std::int64_t{grid_.rows} * grid_.cols : m_; }
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

    // A 2-D lattice whose vertices fill a grid (the lattice of pixel positions, x / sx and y / sy) is stored as that
    // grid instead of chains: cell (row, col) holds the vertex with k2 = row + k2_min (k2 = -k0 - k1, the implicit
    // third coordinate) and col = ((k0 - k1) / 3 - (k2 mod 2)) / 2 + col_min. Along axis 0 a vertex's neighbours are
    // the cells (row - 1, col + p) and (row + 1, col - 1 + p), along axis 1 (row - 1, col - 1 + p) and (row + 1, col +
    // p), along axis 2 (row -+ 2, col), where p = k2 mod 2. Row r's vertices are the cells [row_begin[r], row_end[r]);
    // the others hold zero. Vertex ids are cell indices (row * cols + col), so the splat lists and the slice's offsets
    // index cells, and the blur is a sweep over the rows with fixed neighbours instead of a walk along chains.
    struct Grid {
        int rows = 0, cols = 0;  // rows == 0: no grid (chains)
        int parity0 = 0;         // k2 mod 2 of row 0
        std::vector<std::int32_t> row_begin, row_end;
    };
    const Grid& grid() const { return grid_; }
    // Whether init() may store a planar lattice as a grid (default); false keeps chains (tests compare the two).
    void set_grid_allowed(bool allowed) { grid_allowed_ = allowed; }

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
    template <class Key>
    bool build_grid(const BuildTables& tables);
    void build_splat();
    void compute_scalar(const float* in, float* out) const;

    int d_ = 0;
    std::int64_t n_ = 0, m_ = 0;
    LargeVector<std::int32_t> offset_;
    LargeVector<float> slice_w_;
    LargeVector<SplatEntry> splat_;
    LargeVector<std::int32_t> splat_begin_;
    LargeVector<std::int32_t> order_;
    std::vector<std::int64_t> segments_;
    Grid grid_;
    bool grid_allowed_ = true;
};

// Splat `in` (n x stride) onto the vertices, then blur the vertex values along every axis (forward order): values
// (n_rows() x stride). A grid lattice does both in one sweep over its rows (a few rows of workspace per thread).
void splat_blur(const Permutohedral& lat, const float* in, float* values, int stride);
// The two halves, for a lattice without a grid (timed apart in profiles): splat `in` onto the vertices, then blur the
// vertex values in place.
void splat(const Permutohedral& lat, const float* in, float* values, int stride);
void blur(const Permutohedral& lat, float* values, int stride);

// Half-precision vertex rows (IEEE binary16, `half_row_pitch(stride)` halves per row, arithmetic in
// float): the splat sums in float, its rows are rounded once to half, then the blur and the slice read
// and write half the bytes. Where this CPU converts in vector instructions (x86-64 with AVX2 and
// F16C, AArch64).
bool half_rows_supported(int stride);
int half_row_pitch(int stride);
// splat_blur() with each vertex's sum rounded once to half precision (n_rows() rows of `pitch` halves), and each
// blurred value rounded again; splat() and blur() likewise.
void splat_blur(const Permutohedral& lat, const float* in, std::uint16_t* half, int stride, int pitch);
void splat(const Permutohedral& lat, const float* in, std::uint16_t* half, int stride, int pitch);
void blur(const Permutohedral& lat, std::uint16_t* values, int stride, int pitch);

}  // namespace deeplab::crf
