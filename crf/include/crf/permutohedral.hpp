// Permutohedral lattice (Adams, Baek & Davis 2010) for high-dimensional Gaussian filtering.
//
// Same lattice, barycentric weights, blur and slice scaling as the reference dense CRF code
// (Krähenbühl & Koltun 2011, as shipped in pydensecrf), so filtered values agree with it to float
// rounding. Built once per feature set; filtering allocates nothing beyond the caller's buffers.
#pragma once

#include <cstdint>
#include <vector>

namespace deeplab::crf {

class Permutohedral {
public:
    // features: `dim` × `n` floats, one row per feature dimension (the layout pydensecrf takes).
    // Throws std::invalid_argument for non-finite features or bad sizes, std::overflow_error when the
    // lattice coordinates would not be representable (features too large, e.g. a tiny sigma).
    // `reference_padding` reproduces a quirk of pydensecrf's SSE build: when n is not a multiple of
    // 4 the lattice also holds the vertices of a zero feature vector (they only take part in the blur).
    void init(const float* features, int dim, std::int64_t n, bool reference_padding = true);

    // out[i] = slice_scale[i] * alpha * sum_j w_ij * blur(splat(splat_scale * in))  (value_size
    // values per point, point-major). With the default scales this is the reference compute().
    void compute(const float* in, float* out, int value_size) const;

    // Scale the splat weights by splat_scale[point] and the slice weights by slice_scale[point]
    // (either may be null): used to fold kernel normalisations and label weights into the lattice.
    void scale_weights(const float* splat_scale, const float* slice_scale);

    int dim() const { return d_; }
    std::int64_t n_points() const { return n_; }
    std::int64_t n_vertices() const { return m_; }
    std::size_t memory_bytes() const;

    // Internal layout (read by the CRF's fused kernels).
    // Point i touches vertices offset[i*(d+1) + r] with slice weights slice_w[i*(d+1) + r].
    const std::int32_t* offsets() const { return offset_.data(); }
    const float* slice_weights() const { return slice_w_.data(); }
    // Vertex v gathers points csr_pix[k] with weights csr_w[k], k in [csr_start[v], csr_start[v+1]).
    const std::int32_t* csr_start() const { return csr_start_.data(); }
    const std::int32_t* csr_pix() const { return csr_pix_.data(); }
    const float* csr_w() const { return csr_w_.data(); }
    // Blur neighbours along axis j: neighbors[(j*m + v)*2 + {0,1}]; a missing one is m (a zero row).
    const std::int32_t* neighbors() const { return nbr_.data(); }

private:
    template <class Key>
    void build(const float* features, bool reference_padding, const std::vector<float>& scale);

    int d_ = 0;
    std::int64_t n_ = 0, m_ = 0;
    std::vector<std::int32_t> offset_;
    std::vector<float> slice_w_;
    std::vector<std::int32_t> csr_start_, csr_pix_;
    std::vector<float> csr_w_;
    std::vector<std::int32_t> nbr_;
};

// Splat `in` (n × stride floats) onto the lattice vertices: values ((m+1) × stride; row m = 0).
void splat(const Permutohedral& lat, const float* in, float* values, int stride);
// Blur along every axis (forward order), ping-ponging between values and tmp (same shape).
// Returns the buffer that holds the result (values or tmp).
float* blur(const Permutohedral& lat, float* values, float* tmp, int stride);

}  // namespace deeplab::crf
