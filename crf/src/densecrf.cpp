#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "crf/crf.hpp"
#include "filter_rules.hpp"
#include "parallel.hpp"
#include "kernels.hpp"

#if defined(__unix__) || defined(__APPLE__)
#include <unistd.h>
#endif

namespace deeplab::crf {
namespace {

using detail::parallel_for;
constexpr float kPadEnergy = -1e30f;  // energy of padding lanes: exp() makes them exactly 0

std::uint64_t physical_memory_bytes() {
#if defined(_SC_PHYS_PAGES) && defined(_SC_PAGESIZE)
    const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    if (pages > 0 && page > 0) return static_cast<std::uint64_t>(pages) * static_cast<std::uint64_t>(page);
#endif
    return std::numeric_limits<std::uint64_t>::max();
}

void check_memory(double bytes, const char* what) {
    if (bytes > 0.9 * static_cast<double>(physical_memory_bytes()))
        throw OutOfMemory(std::string(what) + " needs about " +
                          std::to_string(static_cast<long long>(bytes / 1048576)) +
                          " MiB, more than this machine's memory");
}

template <class F>
auto guarded_alloc(const char* what, F&& f) {
    try {
        return f();
    } catch (const std::bad_alloc&) {
        throw OutOfMemory(std::string("out of memory while allocating ") + what);
    }
}

// True when no value is NaN or infinite (checked in parallel: it is a pass over the whole input).
bool all_finite(const float* x, std::int64_t count) {
    constexpr std::int64_t kBlock = 1 << 16;
    std::vector<char> ok(static_cast<std::size_t>((count + kBlock - 1) / kBlock), 1);
    parallel_for(static_cast<std::int64_t>(ok.size()), 1, [&](std::int64_t lo, std::int64_t hi) {
        for (std::int64_t b = lo; b < hi; ++b) {
            bool fine = true;
            for (std::int64_t i = b * kBlock, e = std::min(count, (b + 1) * kBlock); i < e; ++i)
                fine &= std::isfinite(x[i]);
            ok[b] = fine;
        }
    });
    return std::all_of(ok.begin(), ok.end(), [](char c) { return c != 0; });
}

// Adds the seconds from its construction to its destruction to `*slot` (nothing when slot is null).
class PhaseTimer {
  public:
    explicit PhaseTimer(double* slot) : slot_(slot) {
        if (slot_) start_ = std::chrono::steady_clock::now();
    }
    ~PhaseTimer() {
        if (slot_) *slot_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    }
    PhaseTimer(const PhaseTimer&) = delete;
    PhaseTimer& operator=(const PhaseTimer&) = delete;

  private:
    double* slot_;
    std::chrono::steady_clock::time_point start_;
};

// Labels per row: a multiple of 8 (one AVX / two SSE-NEON vectors), or 4 for tiny label sets.
int row_stride(int labels) {
    return labels <= 4 ? 4 : (labels + 7) / 8 * 8;
}

}  // namespace

Compatibility Compatibility::potts(float w) {
    if (!std::isfinite(w)) throw std::invalid_argument("Potts compatibility weight must be finite");
    Compatibility c;
    c.kind = Kind::Potts;
    c.weight = w;
    return c;
}

Compatibility Compatibility::diagonal(std::vector<float> v) {
    for (float x : v)
        if (!std::isfinite(x)) throw std::invalid_argument("compatibility contains NaN or infinity");
    Compatibility c;
    c.kind = Kind::Diagonal;
    c.values = std::move(v);
    return c;
}

Compatibility Compatibility::matrix(std::vector<float> m) {
    for (float x : m)
        if (!std::isfinite(x)) throw std::invalid_argument("compatibility contains NaN or infinity");
    Compatibility c;
    c.kind = Kind::Matrix;
    c.values = std::move(m);
    return c;
}

// A Gaussian over pixel positions filtered in image space: separable taps exp(-d^2 / 2 sigma^2),
// |d| <= radius, with the normalisation (a product of row and column sums, borders included) and the
// Potts weight folded into per-column and per-row factors.
struct ImageGaussian {
    int width = 0, height = 0;  // width 0: the term is a lattice
    int radius_x = 0, radius_y = 0;
    std::vector<float> taps_x, taps_y, pre_x, pre_y, post_x, post_y;
};

// One pairwise term: its lattice (with normalisation and Potts weight folded into the weights) or its
// image-space Gaussian, the compatibility, and its per-iteration workspace.
struct PairwiseTerm {
    Permutohedral lattice;
    ImageGaussian image;
    Compatibility::Kind kind = Compatibility::Kind::Potts;
    std::vector<float> compat;               // Diagonal: stride values; Matrix: labels x stride (symmetrised, padded)
    LargeVector<float> values;               // lattice: vertex values, m x stride; image: the column pass, n x stride
    LargeVector<std::uint16_t> half_values;  // lattice with half rows: m x half_pitch (values unused)
    int half_pitch = 0;                      // 0: float rows

    bool in_image_space() const { return image.width > 0; }
    bool float_rows() const { return half_pitch == 0; }
    std::int64_t value_rows() const {
        return in_image_space() ? image.width * std::int64_t{image.height} : lattice.n_rows();
    }
};

namespace {

void check_normalization(Normalization normalization) {
    if (static_cast<int>(normalization) < 0 || static_cast<int>(normalization) > 3)
        throw std::invalid_argument("unknown normalization");
}

}  // namespace

struct DenseCRF::Impl {
    std::int64_t n = 0;
    int labels = 0, stride = 0;
    LargeVector<float> neg_unary;  // n x stride, -U (padding lanes kPadEnergy)
    std::vector<PairwiseTerm> terms;
    LargeVector<float> q;  // n x stride workspace
    std::vector<detail::TermView> views;
    const detail::Kernels& kernels;
    Profile* profile = nullptr;
    bool half_rows = false;

    double* phase(double Profile::* field) const { return profile ? &(profile->*field) : nullptr; }
    // The profile entry of the term about to be added (index terms.size()), or null.
    Profile::Term* next_term_profile() {
        if (!profile) return nullptr;
        if (profile->terms.size() <= terms.size()) profile->terms.resize(terms.size() + 1);
        return &profile->terms[terms.size()];
    }

    Impl(std::int64_t n_, int labels_)
        : n(n_), labels(labels_), stride(row_stride(labels_)), kernels(detail::kernels_for(stride)) {
        check_memory(2.0 * n * stride * 4, "the CRF");
        guarded_alloc("the unary", [&] {
            neg_unary.resize(static_cast<std::size_t>(n) * stride);
            return 0;
        });
        parallel_for(n, 8192, [&](std::int64_t lo, std::int64_t hi) {  // U = 0 until a unary is set
            std::fill(neg_unary.data() + lo * stride, neg_unary.data() + hi * stride, 0.f);
        });
        fill_padding(neg_unary.data(), kPadEnergy);
    }

    void fill_padding(float* rows, float value) {
        if (stride == labels) return;
        parallel_for(n, 8192, [&](std::int64_t lo, std::int64_t hi) {
            for (std::int64_t i = lo; i < hi; ++i)
                std::fill(rows + i * stride + labels, rows + (i + 1) * stride, value);
        });
    }

    // label-major (labels x n) <-> pixel-major (n x stride), blocked over pixels for cache locality.
    template <class Op>
    void from_label_major(const float* src, float* dst, Op op) {
        parallel_for(n, 2048, [&](std::int64_t lo, std::int64_t hi) {
            for (std::int64_t b = lo; b < hi; b += 256) {
                const std::int64_t e = std::min(hi, b + 256);
                for (int l = 0; l < labels; ++l) {
                    const float* s = src + static_cast<std::int64_t>(l) * n;
                    for (std::int64_t i = b; i < e; ++i) dst[i * stride + l] = op(s[i]);
                }
            }
        });
    }
    void to_label_major(const float* src, float* dst) {
        parallel_for(n, 2048, [&](std::int64_t lo, std::int64_t hi) {
            for (std::int64_t b = lo; b < hi; b += 256) {
                const std::int64_t e = std::min(hi, b + 256);
                for (int l = 0; l < labels; ++l) {
                    float* d = dst + static_cast<std::int64_t>(l) * n;
                    for (std::int64_t i = b; i < e; ++i) d[i] = src[i * stride + l];
                }
            }
        });
    }

    void ensure_workspace() {
        views.reserve(terms.size());
        double bytes = q.empty() ? static_cast<double>(n) * stride * 4.0 : 0.0;
        for (auto& t : terms) {
            t.half_pitch = half_rows && !t.in_image_space() ? half_row_pitch(stride) : 0;
            if (t.float_rows() && t.values.empty()) bytes += static_cast<double>(t.value_rows()) * stride * 4;
            if (t.half_values.size() != static_cast<std::size_t>(t.value_rows()) * t.half_pitch)
                bytes += static_cast<double>(t.value_rows()) * t.half_pitch * 2;
        }
        if (bytes == 0.0) return;
        check_memory(bytes, "CRF inference");
        guarded_alloc("the inference workspace", [&] {
            // Not zeroed: every step writes q (softmax) and all vertex rows (splat) before reading them.
            if (q.empty()) q.resize(static_cast<std::size_t>(n) * stride);
            for (auto& t : terms) {
                if (t.float_rows() && t.values.empty())
                    t.values.resize(static_cast<std::size_t>(t.value_rows()) * stride);
                t.half_values.resize(static_cast<std::size_t>(t.value_rows()) * t.half_pitch);
            }
            return 0;
        });
    }

    detail::FusedArgs fused_args(std::vector<detail::TermView>& views) const {
        views.clear();
        for (const PairwiseTerm& t : terms) {
            const ImageGaussian& g = t.image;
            const detail::ImageView image{g.width, g.radius_x, g.taps_x.data(), g.post_x.data(), g.post_y.data()};
            views.push_back({t.lattice.offsets(), t.lattice.slice_weights(), t.values.data(),
                             t.half_pitch ? t.half_values.data() : nullptr, t.half_pitch,
                             t.compat.empty() ? nullptr : t.compat.data(), t.lattice.dim() + 1,
                             static_cast<int>(t.kind), image});
        }
        return {neg_unary.data(), views.data(), static_cast<int>(views.size()), labels, stride};
    }

    void filter_all(const float* q_in) {
        for (auto& t : terms) {
            if (t.in_image_space()) {
                PhaseTimer timer(phase(&Profile::blur));
                const ImageGaussian& g = t.image;
                const detail::ColumnFilter f{q_in,       t.values.data(), g.width,        g.height,
                                             g.radius_y, g.taps_y.data(), g.pre_x.data(), g.pre_y.data()};
                parallel_for(g.height, 4, [&](std::int64_t lo, std::int64_t hi) {
                    kernels.column_filter(f, static_cast<int>(lo), static_cast<int>(hi), stride);
                });
                continue;
            }
            std::uint16_t* half = t.half_pitch ? t.half_values.data() : nullptr;
            if (t.lattice.grid().rows > 0) {  // one sweep does the splat and the blur: timed as the blur
                PhaseTimer timer(phase(&Profile::blur));
                if (half)
                    splat_blur(t.lattice, q_in, half, stride, t.half_pitch);
                else
                    splat_blur(t.lattice, q_in, t.values.data(), stride);
                continue;
            }
            {
                PhaseTimer timer(phase(&Profile::splat));
                if (half)
                    splat(t.lattice, q_in, half, stride, t.half_pitch);
                else
                    splat(t.lattice, q_in, t.values.data(), stride);
            }
            PhaseTimer timer(phase(&Profile::blur));
            if (half)
                blur(t.lattice, half, stride, t.half_pitch);
            else
                blur(t.lattice, t.values.data(), stride);
        }
    }

    // q_out = softmax(-U - pairwise(q_in)) (one mean-field step); q_out may alias q_in.
    void iterate(const float* q_in, float* q_out) {
        filter_all(q_in);
        PhaseTimer timer(phase(&Profile::slice));
        const detail::FusedArgs args = fused_args(views);
        parallel_for(n, 512, [&](std::int64_t lo, std::int64_t hi) { kernels.softmax(args, lo, hi, q_out, true); });
    }

    void softmax_unary(float* q_out) {  // Q0 = softmax(-U)
        PhaseTimer timer(phase(&Profile::unary));
        const detail::FusedArgs args = fused_args(views);
        parallel_for(n, 2048, [&](std::int64_t lo, std::int64_t hi) { kernels.softmax(args, lo, hi, q_out, false); });
    }

    double kl_divergence(const float* q_in) {
        filter_all(q_in);
        const detail::FusedArgs args = fused_args(views);
        const std::int64_t block = 4096;
        const std::int64_t n_blocks = (n + block - 1) / block;
        std::vector<double> partial(n_blocks, 0.0);
        parallel_for(n_blocks, 1, [&](std::int64_t lo, std::int64_t hi) {
            for (std::int64_t b = lo; b < hi; ++b)
                partial[b] = kernels.kl(args, b * block, std::min(n, (b + 1) * block), q_in);
        });
        double kl = 0.0;
        for (double p : partial) kl += p;  // fixed blocks: the same sum whatever the thread count
        return kl;
    }

    // The term's compatibility (checked against the label count).
    PairwiseTerm new_term(const Compatibility& compat) const {
        PairwiseTerm t;
        t.kind = compat.kind;
        if (compat.kind == Compatibility::Kind::Diagonal) {
            if (compat.values.size() != static_cast<std::size_t>(labels))
                throw std::invalid_argument("diagonal compatibility needs " + std::to_string(labels) + " values, got " +
                                            std::to_string(compat.values.size()));
            t.compat.assign(stride, 0.f);
            std::copy(compat.values.begin(), compat.values.end(), t.compat.begin());
        } else if (compat.kind == Compatibility::Kind::Matrix) {
            if (compat.values.size() != static_cast<std::size_t>(labels) * labels)
                throw std::invalid_argument("compatibility matrix must be " + std::to_string(labels) + " x " +
                                            std::to_string(labels));
            t.compat.assign(static_cast<std::size_t>(labels) * stride, 0.f);
            for (int a = 0; a < labels; ++a)
                for (int b = 0; b < labels; ++b)
                    t.compat[a * stride + b] = 0.5f * (compat.values[a * labels + b] + compat.values[b * labels + a]);
        }
        return t;
    }

    // A Gaussian over pixel positions (width x height = n), sigma sx, sy, filtered in image space.
    void add_image_gaussian(int width, int height, float sx, float sy, const Compatibility& compat,
                            Normalization normalization) {
        PairwiseTerm t = new_term(compat);
        Profile::Term* timing = next_term_profile();
        PhaseTimer timer(timing ? &timing->lattice : nullptr);
        ImageGaussian& g = t.image;
        g.width = width;
        g.height = height;
        detail::GaussianAxis ax = detail::gaussian_axis(sx, width, normalization);
        detail::GaussianAxis ay = detail::gaussian_axis(sy, height, normalization);
        g.radius_x = ax.radius;
        g.radius_y = ay.radius;
        g.taps_x = std::move(ax.taps);
        g.pre_x = std::move(ax.pre);
        g.post_x = std::move(ax.post);
        g.taps_y = std::move(ay.taps);
        g.pre_y = std::move(ay.pre);
        g.post_y = std::move(ay.post);
        if (compat.kind == Compatibility::Kind::Potts)
            for (auto& p : g.post_x) p *= compat.weight;
        terms.push_back(std::move(t));
    }

    void add_term(const float* features, int dim, const Compatibility& compat, Normalization normalization) {
        PairwiseTerm t = new_term(compat);
        Profile::Term* timing = next_term_profile();
        check_memory(static_cast<double>(n) * (dim + 1) * 48.0, "the lattice");
        {
            PhaseTimer timer(timing ? &timing->lattice : nullptr);
            guarded_alloc("the lattice", [&] {
                t.lattice.init(features, dim, n);
                return 0;
            });
        }
        if (timing) timing->vertices = t.lattice.n_vertices();

        // Kernel normalisation (the reference's DenseKernel): norm = K * 1.
        PhaseTimer timer(timing ? &timing->normalisation : nullptr);
        std::vector<float> ones(n, 1.f), norm(n);
        t.lattice.compute(ones.data(), norm.data(), 1);
        std::vector<float> pre(n, 1.f), post(n, 1.f);
        const float weight = compat.kind == Compatibility::Kind::Potts ? compat.weight : 1.f;
        parallel_for(n, 8192, [&](std::int64_t lo, std::int64_t hi) {
            for (std::int64_t i = lo; i < hi; ++i) {
                const double v = norm[i];
                switch (normalization) {
                    case Normalization::Symmetric:
                        pre[i] = post[i] = static_cast<float>(1.0 / std::sqrt(v + 1e-20));
                        break;
                    case Normalization::Before:
                        pre[i] = static_cast<float>(1.0 / (v + 1e-20));
                        break;
                    case Normalization::After:
                        post[i] = static_cast<float>(1.0 / (v + 1e-20));
                        break;
                    case Normalization::None:
                        break;
                }
                post[i] *= weight;
            }
        });
        t.lattice.scale_weights(pre.data(), post.data());
        terms.push_back(std::move(t));
    }
};

DenseCRF::DenseCRF(std::int64_t n_pixels, int n_labels) {
    if (n_pixels < 0) throw std::invalid_argument("the number of pixels must be >= 0");
    if (n_labels < 1 || n_labels > detail::kMaxStride - 8)
        throw std::invalid_argument("the number of labels must be in [1, " + std::to_string(detail::kMaxStride - 8) +
                                    "], got " + std::to_string(n_labels));
    if (n_pixels >= std::numeric_limits<std::int32_t>::max() / 8)
        throw std::invalid_argument("too many pixels (" + std::to_string(n_pixels) + ")");
    impl_ = std::make_unique<Impl>(n_pixels, n_labels);
}
DenseCRF::~DenseCRF() = default;
DenseCRF::DenseCRF(DenseCRF&&) noexcept = default;
DenseCRF& DenseCRF::operator=(DenseCRF&&) noexcept = default;

std::int64_t DenseCRF::n_pixels() const {
    return impl_->n;
}
int DenseCRF::n_labels() const {
    return impl_->labels;
}
std::size_t DenseCRF::n_pairwise() const {
    return impl_->terms.size();
}

void DenseCRF::set_profile(Profile* profile) {
    impl_->profile = profile;
}

bool DenseCRF::set_half_rows(bool on) {
    impl_->half_rows = on && half_rows_supported(impl_->stride);
    return impl_->half_rows;
}

void DenseCRF::set_unary_energy(const float* unary) {
    PhaseTimer timer(impl_->phase(&Profile::unary));
    const std::int64_t total = impl_->n * impl_->labels;
    if (!all_finite(unary, total)) throw std::invalid_argument("unary energy contains NaN or infinity");
    impl_->from_label_major(unary, impl_->neg_unary.data(), [](float u) { return -u; });
}

void DenseCRF::set_unary_from_probabilities(const float* probs, float clip_min) {
    Impl& m = *impl_;
    if (!(clip_min > 0.f && clip_min <= 1.f)) throw std::invalid_argument("clip must be in (0, 1]");
    PhaseTimer timer(m.phase(&Profile::unary));
    const std::int64_t total = m.n * m.labels;
    if (!all_finite(probs, total)) throw std::invalid_argument("probabilities contain NaN or infinity");
    // -U = log(clip(p, clip_min, 1)): transpose, then a vectorised log over whole rows.
    m.from_label_major(probs, m.neg_unary.data(), [](float p) { return p; });
    parallel_for(m.n, 4096, [&](std::int64_t lo, std::int64_t hi) {
        m.kernels.log_clipped(m.neg_unary.data() + lo * m.stride, (hi - lo) * m.stride, clip_min);
    });
    m.fill_padding(m.neg_unary.data(), kPadEnergy);
}

void DenseCRF::set_unary_from_logits(const float* logits) {
    Impl& m = *impl_;
    const std::int64_t total = m.n * m.labels;
    if (!all_finite(logits, total)) throw std::invalid_argument("logits contain NaN or infinity");
    m.from_label_major(logits, m.neg_unary.data(), [](float x) { return x; });
    parallel_for(m.n, 4096, [&](std::int64_t lo, std::int64_t hi) {  // log-softmax per pixel
        for (std::int64_t i = lo; i < hi; ++i) {
            float* row = m.neg_unary.data() + i * m.stride;
            float mx = row[0];
            for (int l = 1; l < m.labels; ++l) mx = std::max(mx, row[l]);
            double sum = 0.0;
            for (int l = 0; l < m.labels; ++l) sum += std::exp(static_cast<double>(row[l] - mx));
            const float lse = mx + static_cast<float>(std::log(sum));
            for (int l = 0; l < m.labels; ++l) row[l] -= lse;
        }
    });
}

void DenseCRF::set_unary_from_labels(const std::int32_t* labels, float gt_prob, bool zero_unsure) {
    Impl& m = *impl_;
    if (!(gt_prob > 0.f && gt_prob < 1.f)) throw std::invalid_argument("gt_prob must be in (0, 1)");
    if (m.labels < 2) throw std::invalid_argument("unary from labels needs at least 2 labels");
    const int hi_label = zero_unsure ? m.labels : m.labels - 1;
    for (std::int64_t i = 0; i < m.n; ++i)
        if (labels[i] < 0 || labels[i] > hi_label)
            throw std::invalid_argument("label " + std::to_string(labels[i]) + " out of range [0, " +
                                        std::to_string(hi_label) + "]");
    const float n_energy = static_cast<float>(std::log((1.0 - gt_prob) / (m.labels - 1)));
    const float p_energy = static_cast<float>(std::log(static_cast<double>(gt_prob)));
    const float u_energy = static_cast<float>(std::log(1.0 / m.labels));
    parallel_for(m.n, 4096, [&](std::int64_t lo, std::int64_t hi) {
        for (std::int64_t i = lo; i < hi; ++i) {
            float* row = m.neg_unary.data() + i * m.stride;
            const int lab = labels[i];
            if (zero_unsure && lab == 0) {
                std::fill(row, row + m.labels, u_energy);
                continue;
            }
            std::fill(row, row + m.labels, n_energy);
            row[zero_unsure ? lab - 1 : lab] = p_energy;
        }
    });
}

void DenseCRF::add_pairwise_energy(const float* features, int dim, const Compatibility& compat, KernelType,
                                   Normalization normalization) {
    check_normalization(normalization);
    impl_->add_term(features, dim, compat, normalization);
}

void DenseCRF::inference(int n_iterations, float* q_out, const float* q_init) {
    if (n_iterations < 0) throw std::invalid_argument("the number of iterations must be >= 0");
    Impl& m = *impl_;
    m.ensure_workspace();
    if (q_init != nullptr) {
        m.from_label_major(q_init, m.q.data(), [](float x) { return x; });
        m.fill_padding(m.q.data(), 0.f);
    } else {
        m.softmax_unary(m.q.data());
    }
    for (int it = 0; it < n_iterations; ++it) m.iterate(m.q.data(), m.q.data());
    m.to_label_major(m.q.data(), q_out);
}

void DenseCRF::start_inference(float* q_out) {
    Impl& m = *impl_;
    m.ensure_workspace();
    m.softmax_unary(m.q.data());
    m.to_label_major(m.q.data(), q_out);
}

void DenseCRF::step_inference(float* q) {
    Impl& m = *impl_;
    m.ensure_workspace();
    m.from_label_major(q, m.q.data(), [](float x) { return x; });
    m.fill_padding(m.q.data(), 0.f);
    m.iterate(m.q.data(), m.q.data());
    m.to_label_major(m.q.data(), q);
}

double DenseCRF::kl_divergence(const float* q) {
    Impl& m = *impl_;
    m.ensure_workspace();
    m.from_label_major(q, m.q.data(), [](float x) { return x; });
    m.fill_padding(m.q.data(), 0.f);
    return m.kl_divergence(m.q.data());
}

DenseCRF2D::DenseCRF2D(int width, int height, int n_labels, LatticeCache* cache)
    : DenseCRF((width < 0 || height < 0) ? -1 : static_cast<std::int64_t>(width) * height, n_labels),
      width_(width),
      height_(height),
      cache_(cache) {}

// Entries are most recently used first; a lattice is shared (copied out) under the lock only briefly.
struct LatticeCache::Impl {
    struct Key {
        int width = -1, height = -1;
        float sx = 0.f, sy = 0.f, weight = 0.f;
        Normalization normalization = Normalization::Symmetric;
        bool operator==(const Key& o) const {
            return width == o.width && height == o.height && sx == o.sx && sy == o.sy && weight == o.weight &&
                   normalization == o.normalization;
        }
    };
    std::size_t capacity;
    mutable std::mutex mutex;
    std::vector<std::pair<Key, std::shared_ptr<const PairwiseTerm>>> entries;

    std::shared_ptr<const PairwiseTerm> find(const Key& key) {
        std::lock_guard<std::mutex> lk(mutex);
        for (std::size_t i = 0; i < entries.size(); ++i)
            if (entries[i].first == key) {
                std::rotate(entries.begin(), entries.begin() + i, entries.begin() + i + 1);
                return entries.front().second;
            }
        return nullptr;
    }
    void put(const Key& key, std::shared_ptr<const PairwiseTerm> term) {
        if (capacity == 0) return;
        std::shared_ptr<const PairwiseTerm> dropped;  // freed outside the lock
        std::lock_guard<std::mutex> lk(mutex);
        if (entries.size() == capacity) {
            dropped = std::move(entries.back().second);
            entries.pop_back();
        }
        entries.insert(entries.begin(), {key, std::move(term)});
    }
};

LatticeCache::LatticeCache(std::size_t capacity) : impl_(std::make_unique<Impl>()) {
    impl_->capacity = capacity;
}
LatticeCache::~LatticeCache() = default;

LatticeCache& LatticeCache::process_default() {
    static LatticeCache* cache = new LatticeCache(1);  // never destroyed: CRFs may run during static destruction
    return *cache;
}

std::size_t LatticeCache::capacity() const {
    return impl_->capacity;
}

std::size_t LatticeCache::size() const {
    std::lock_guard<std::mutex> lk(impl_->mutex);
    return impl_->entries.size();
}

std::size_t LatticeCache::memory_bytes() const {
    std::lock_guard<std::mutex> lk(impl_->mutex);
    std::size_t bytes = 0;
    for (const auto& e : impl_->entries) bytes += e.second->lattice.memory_bytes();
    return bytes;
}

void LatticeCache::clear() {
    std::vector<std::pair<Impl::Key, std::shared_ptr<const PairwiseTerm>>> dropped;  // freed outside the lock
    std::lock_guard<std::mutex> lk(impl_->mutex);
    dropped.swap(impl_->entries);
}

void clear_lattice_cache() {
    LatticeCache::process_default().clear();
}

void DenseCRF2D::add_pairwise_gaussian(float sx, float sy, const Compatibility& compat, KernelType kernel,
                                       Normalization normalization, GaussianFilter filter) {
    check_normalization(normalization);
    if (filter == GaussianFilter::Auto && n_pixels() > 0 && detail::image_space_gaussian(sx, sy, normalization)) {
        impl_->add_image_gaussian(width_, height_, sx, sy, compat, normalization);
        return;
    }
    const bool cacheable = cache_ != nullptr && compat.kind == Compatibility::Kind::Potts;
    const LatticeCache::Impl::Key key{width_, height_, sx, sy, compat.weight, normalization};
    if (cacheable) {
        if (std::shared_ptr<const PairwiseTerm> hit = cache_->impl_->find(key)) {
            Profile::Term* timing = impl_->next_term_profile();
            PhaseTimer timer(timing ? &timing->lattice : nullptr);
            impl_->terms.push_back(guarded_alloc("the lattice", [&] { return PairwiseTerm(*hit); }));
            if (timing) timing->vertices = hit->lattice.n_vertices();
            return;
        }
    }
    const std::int64_t n = n_pixels();
    std::vector<float> f = guarded_alloc("features", [&] { return std::vector<float>(2 * n); });
    parallel_for(height_, 64, [&](std::int64_t lo, std::int64_t hi) {
        for (std::int64_t j = lo; j < hi; ++j)
            for (int i = 0; i < width_; ++i) {
                f[j * width_ + i] = static_cast<float>(i) / sx;
                f[n + j * width_ + i] = static_cast<float>(j) / sy;
            }
    });
    add_pairwise_energy(f.data(), 2, compat, kernel, normalization);
    if (cacheable) cache_->impl_->put(key, std::make_shared<const PairwiseTerm>(impl_->terms.back()));
}

void DenseCRF2D::add_pairwise_bilateral(float sx, float sy, float s0, float s1, float s2, const std::uint8_t* image,
                                        const Compatibility& compat, KernelType kernel, Normalization normalization) {
    const std::int64_t n = n_pixels();
    std::vector<float> f = guarded_alloc("features", [&] { return std::vector<float>(5 * n); });
    parallel_for(height_, 64, [&](std::int64_t lo, std::int64_t hi) {
        for (std::int64_t j = lo; j < hi; ++j)
            for (int i = 0; i < width_; ++i) {
                const std::int64_t p = j * width_ + i;
                f[p] = static_cast<float>(i) / sx;
                f[n + p] = static_cast<float>(j) / sy;
                f[2 * n + p] = static_cast<float>(image[p * 3 + 0]) / s0;
                f[3 * n + p] = static_cast<float>(image[p * 3 + 1]) / s1;
                f[4 * n + p] = static_cast<float>(image[p * 3 + 2]) / s2;
            }
    });
    add_pairwise_energy(f.data(), 5, compat, kernel, normalization);
}

RefineParams RefineParams::voc() {
    return RefineParams{};
}

RefineParams RefineParams::pydensecrf() {
    RefineParams p;
    p.iterations = 5;
    p.gaussian_sxy = 3.f;
    p.gaussian_weight = 3.f;
    p.bilateral_sxy = 80.f;
    p.bilateral_srgb = 13.f;
    p.bilateral_weight = 10.f;
    return p;
}

void RefineParams::validate() const {
    auto bad = [](const std::string& m) { throw std::invalid_argument(m); };
    if (iterations < 0) bad("iterations must be an integer >= 0, got " + std::to_string(iterations));
    for (const auto& [name, v] : {std::pair<const char*, float>{"gaussian_sxy", gaussian_sxy},
                                  {"bilateral_sxy", bilateral_sxy},
                                  {"bilateral_srgb", bilateral_srgb}})
        if (!std::isfinite(v) || v <= 0) bad(std::string(name) + " must be finite and > 0, got " + std::to_string(v));
    for (const auto& [name, v] :
         {std::pair<const char*, float>{"gaussian_weight", gaussian_weight}, {"bilateral_weight", bilateral_weight}})
        if (!std::isfinite(v)) bad(std::string(name) + " must be finite, got " + std::to_string(v));
    const int norm = static_cast<int>(normalization);
    if (norm < 0 || norm > 3) bad("normalization must be in [0, 3], got " + std::to_string(norm));
    if (!(clip > 0.f && clip <= 1.f)) bad("clip must be in (0, 1], got " + std::to_string(clip));
    if (!(scale > 0.f && scale <= 1.f)) bad("scale must be in (0, 1], got " + std::to_string(scale));
}

RefineParams RefineParams::video(RefineParams params) {  // cold: no warm start (see docs/crf.md)
    params.iterations = kVideoIterations;
    params.scale = kVideoScale;
    return params;
}

namespace {

// Area-averages `planes` planes of w x h values (channel-interleaved with `planes` values per pixel when
// interleaved, else planar) down to sw x sh: down the columns, then along the rows.
template <class T>
void shrink(const T* src, int w, int h, int sw, int sh, int planes, bool interleaved, T* dst) {
    const detail::AreaTaps ty = detail::area_taps(h, sh), tx = detail::area_taps(w, sw);
    const std::int64_t pixel = interleaved ? planes : 1, plane = interleaved ? 1 : std::int64_t{w} * h;
    LargeVector<float> columns(static_cast<std::size_t>(planes) * sh * w);  // plane-major; every row is filled
    parallel_for(std::int64_t{planes} * sh, 8, [&](std::int64_t lo, std::int64_t hi) {
        for (std::int64_t r = lo; r < hi; ++r) {
            const std::int64_t c = r / sh, y = r % sh;
            float* out = columns.data() + r * w;
            std::fill(out, out + w, 0.f);
            for (int k = ty.start[y]; k < ty.start[y + 1]; ++k) {
                const T* row = src + c * plane + std::int64_t{ty.source[k]} * w * pixel;
                const float wk = ty.weight[k];
                for (int x = 0; x < w; ++x) out[x] += wk * static_cast<float>(row[x * pixel]);
            }
            for (int x = 0; x < sw; ++x) {
                float v = 0.f;
                for (int k = tx.start[x]; k < tx.start[x + 1]; ++k) v += tx.weight[k] * out[tx.source[k]];
                const std::int64_t o = interleaved ? (y * sw + x) * planes + c : (c * sh + y) * sw + x;
                if constexpr (std::is_same_v<T, std::uint8_t>)
                    dst[o] = static_cast<std::uint8_t>(std::min(255.f, v + 0.5f));
                else
                    dst[o] = v;
            }
        }
    });
}

// f(x, count) over x[0, count) in parallel pieces whose lengths are multiples of the kernels' width; the last
// count % width values go through a zero-padded copy.
template <class F>
void for_vectors(const detail::Kernels& k, float* x, std::int64_t count, F&& f) {
    const std::int64_t w = k.width, body = count / w * w;
    parallel_for(body / w, 1024, [&](std::int64_t lo, std::int64_t hi) { f(x + lo * w, (hi - lo) * w); });
    if (body == count) return;
    float tail[16] = {};
    std::copy(x + body, x + count, tail);
    f(tail, w);
    std::copy(tail, tail + (count - body), x + body);
}

// out = softmax(log clip(P) + up(message)) per pixel, where up is bilinear upsampling (align_corners = false, as
// the runtime's) of the n_labels planes of `message` from sw x sh to w x h, and P = probs (n_labels planes, w x h;
// out may alias probs). Computed as clip(P) exp(up(message) - shift) / sum, a row of all labels at a time:
// shift >= every message value, so no exponential overflows, and no logarithm is taken at full resolution.
void add_message(const detail::Kernels& k, const float* message, int sw, int sh, const float* probs, int w, int h,
                 int n_labels, float clip, float shift, float* out) {
    const detail::BilinearAxis ax = detail::bilinear_axis(w, sw), ay = detail::bilinear_axis(h, sh);
    const std::vector<int>&x0 = ax.i0, &x1 = ax.i1, &y0 = ay.i0, &y1 = ay.i1;
    const std::vector<float>&tx = ax.t, &ty = ay.t;
    const std::int64_t n = std::int64_t{w} * h, row = (w + k.width - 1) / k.width * k.width;
    parallel_for(h, 8, [&](std::int64_t lo, std::int64_t hi) {
        std::vector<float> e(static_cast<std::size_t>(n_labels) * row, 0.f), sum(w);
        for (std::int64_t y = lo; y < hi; ++y) {
            for (int c = 0; c < n_labels; ++c) {
                const float* a = message + (std::int64_t{c} * sh + y0[y]) * sw;
                const float* b = message + (std::int64_t{c} * sh + y1[y]) * sw;
                float* ec = e.data() + c * row;
                for (int x = 0; x < w; ++x) {
                    const float top = a[x0[x]] + tx[x] * (a[x1[x]] - a[x0[x]]);
                    const float bottom = b[x0[x]] + tx[x] * (b[x1[x]] - b[x0[x]]);
                    ec[x] = top + ty[y] * (bottom - top);
                }
                k.exp_below(ec, row, shift);
            }
            std::fill(sum.begin(), sum.end(), 0.f);
            for (int c = 0; c < n_labels; ++c) {
                const float* p = probs + c * n + y * w;
                float* ec = e.data() + c * row;
                for (int x = 0; x < w; ++x) sum[x] += (ec[x] *= std::min(std::max(p[x], clip), 1.f));
            }
            for (int x = 0; x < w; ++x) sum[x] = 1.f / sum[x];
            for (int c = 0; c < n_labels; ++c) {  // probs already read for this row: out may alias it
                const float* ec = e.data() + c * row;
                float* o = out + c * n + y * w;
                for (int x = 0; x < w; ++x) o[x] = ec[x] * sum[x];
            }
        }
    });
}

void refine_at_full_size(const std::uint8_t* image, int width, int height, const float* probs, int n_labels,
                         const RefineParams& params, float* out, const RefineOptions& options) {
    DenseCRF2D crf(width, height, n_labels, options.cache);
    crf.set_profile(options.profile);
    crf.set_half_rows(params.half_rows);
    crf.set_unary_from_probabilities(probs, params.clip);
    crf.add_pairwise_gaussian(params.gaussian_sxy, params.gaussian_sxy, Compatibility::potts(params.gaussian_weight),
                              KernelType::Diag, params.normalization);
    crf.add_pairwise_bilateral(params.bilateral_sxy, params.bilateral_sxy, params.bilateral_srgb, params.bilateral_srgb,
                               params.bilateral_srgb, image, Compatibility::potts(params.bilateral_weight),
                               KernelType::Diag, params.normalization);
    crf.inference(params.iterations, out, options.init);
}

}  // namespace

void refine(const std::uint8_t* image, int width, int height, const float* probs, int n_labels,
            const RefineParams& params, float* out, const RefineOptions& options) {
    params.validate();
    ThreadScope threads(options.threads);
    const int sw = detail::reduced_size(params.scale, width), sh = detail::reduced_size(params.scale, height);
    if (params.scale == 1.f || width <= 0 || height <= 0 || (sw == width && sh == height)) {
        refine_at_full_size(image, width, height, probs, n_labels, params, out, options);
        return;
    }
    if (width < 0 || height < 0 || n_labels < 1) throw std::invalid_argument("bad image size or label count");
    const std::size_t small = static_cast<std::size_t>(sw) * sh, planes = static_cast<std::size_t>(n_labels) * small;
    LargeVector<std::uint8_t> small_image(small * 3);
    LargeVector<float> small_probs(planes), small_init, small_out(planes);
    shrink(image, width, height, sw, sh, 3, true, small_image.data());
    shrink(probs, width, height, sw, sh, n_labels, false, small_probs.data());
    RefineOptions small_options = options;
    if (options.init) {
        small_init.resize(planes);
        shrink(options.init, width, height, sw, sh, n_labels, false, small_init.data());
        small_options.init = small_init.data();
    }
    RefineParams p = params;
    p.gaussian_sxy *= static_cast<float>(sw) / width;
    p.bilateral_sxy *= static_cast<float>(sw) / width;
    refine_at_full_size(small_image.data(), sw, sh, small_probs.data(), n_labels, p, small_out.data(), small_options);
    // The CRF's pairwise message at low resolution, log Q - log P (= -pairwise up to a constant per pixel),
    // upsampled and added to the full-resolution unary: the network's own detail is kept.
    const detail::Kernels& k = detail::kernels_for(8);
    const auto log_clipped = [&](float* x, std::int64_t count) { k.log_clipped(x, count, params.clip); };
    for_vectors(k, small_out.data(), static_cast<std::int64_t>(planes), log_clipped);
    for_vectors(k, small_probs.data(), static_cast<std::int64_t>(planes), log_clipped);
    parallel_for(static_cast<std::int64_t>(planes), 1 << 14, [&](std::int64_t lo, std::int64_t hi) {
        for (std::int64_t i = lo; i < hi; ++i) small_out[i] -= small_probs[i];
    });
    // The message is at most log(1 / clip) = -log(clip).
    add_message(k, small_out.data(), sw, sh, probs, width, height, n_labels, params.clip, -std::log(params.clip), out);
}

}  // namespace deeplab::crf
