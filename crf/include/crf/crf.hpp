// Fully connected CRF with Gaussian edge potentials (Krähenbühl & Koltun, NIPS 2011), mean-field
// inference on permutohedral lattices. Semantics follow pydensecrf (its densecrf C++ core) so that
// results agree with it; the implementation is multithreaded, allocation-free inside iterations,
// and fuses the kernels' slices, the label compatibility, the unary and the softmax in one pass.
//
// Layouts: probabilities / energies are label-major (n_labels × n_pixels, as pydensecrf), images
// are H × W × 3 uint8 (row-major, interleaved), features are dim × n_pixels.
// Errors: std::invalid_argument (bad input), std::overflow_error (lattice coordinates too large),
// deeplab::crf::OutOfMemory (the problem would not fit in memory).
#pragma once

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "crf/large_alloc.hpp"
#include "crf/permutohedral.hpp"

namespace deeplab::crf {

class OutOfMemory : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

// Values match pydensecrf's constants (CONST_KERNEL = 0, ..., NORMALIZE_SYMMETRIC = 3).
enum class KernelType : int { Const = 0, Diag = 1, Full = 2 };
enum class Normalization : int { None = 0, Before = 1, After = 2, Symmetric = 3 };
// How DenseCRF2D filters a Gaussian over pixel positions. Auto: an exact separable Gaussian in image
// space (taps out to 3 sigma) when sigma <= 4/3 pixels and the kernel is normalised (the VOC
// smoothness kernel, sigma 1: faster, and no lattice to build), else the permutohedral lattice.
// Lattice: always the lattice, as pydensecrf (whose lattice approximates the Gaussian).
enum class GaussianFilter : int { Auto = 0, Lattice = 1 };

// Label compatibility mu(l, l'). The pairwise message is  -Potts(w): +w * filtered,
// Diagonal(v): -v[l] * filtered[l],  Matrix(M): -(0.5 (M + M^T) filtered)[l]   (as pydensecrf).
struct Compatibility {
    enum class Kind { Potts, Diagonal, Matrix };
    Kind kind = Kind::Potts;
    float weight = 1.f;         // Potts
    std::vector<float> values;  // Diagonal: n_labels; Matrix: n_labels × n_labels, row-major

    static Compatibility potts(float w);
    static Compatibility diagonal(std::vector<float> v);
    static Compatibility matrix(std::vector<float> m);
};

// The process-wide thread count (default: all cores; n <= 0 restores it): the size of the CRF's thread pool.
void set_num_threads(int n);
// Threads the calling thread's CRFs use: the process-wide count, or less inside a ThreadScope.
int num_threads();

// While alive, CRFs run from this thread use at most `threads` threads (<= 0: no limit), without changing the
// process-wide count (a pipeline stage or a caller sets its own). Results do not depend on the thread count.
class ThreadScope {
  public:
    explicit ThreadScope(int threads);
    ~ThreadScope();
    ThreadScope(const ThreadScope&) = delete;
    ThreadScope& operator=(const ThreadScope&) = delete;

  private:
    int previous_;
};

// Seconds spent per phase by a CRF that was given this record (DenseCRF::set_profile), for benchmarks. Phases
// add up over calls; `terms` has one entry per pairwise term, in the order they were added.
struct Profile {
    struct Term {
        double lattice = 0, normalisation = 0;  // lattice build (or copy from a LatticeCache); kernel normalisation
        std::int64_t vertices = 0;
    };
    double unary = 0;  // unary energy and the first softmax
    double splat = 0, blur = 0;
    double slice = 0;  // slice + compatibility + unary + softmax, one fused pass
    std::vector<Term> terms;
};

class DenseCRF {
  public:
    DenseCRF(std::int64_t n_pixels, int n_labels);
    virtual ~DenseCRF();
    DenseCRF(const DenseCRF&) = delete;
    DenseCRF& operator=(const DenseCRF&) = delete;
    DenseCRF(DenseCRF&&) noexcept;
    DenseCRF& operator=(DenseCRF&&) noexcept;

    std::int64_t n_pixels() const;
    int n_labels() const;
    std::size_t n_pairwise() const;

    // Unary energy U = -log P (n_labels × n_pixels). Non-finite values are rejected.
    void set_unary_energy(const float* unary);
    // U = -log(clip(p, clip_min, 1)) (pydensecrf.utils.unary_from_softmax).
    void set_unary_from_probabilities(const float* probs, float clip_min = 1e-5f);
    // U = -log softmax(logits) over labels.
    void set_unary_from_logits(const float* logits);
    // pydensecrf.utils.unary_from_labels: labels in [0, n_labels] when zero_unsure (0 = unknown), else
    // in [0, n_labels); the given label gets probability gt_prob, the others share the rest.
    void set_unary_from_labels(const std::int32_t* labels, float gt_prob, bool zero_unsure);

    // features: dim × n_pixels. Builds the kernel's lattice now (the costly part of the set-up).
    void add_pairwise_energy(const float* features, int dim, const Compatibility& compat,
                             KernelType kernel = KernelType::Diag,
                             Normalization normalization = Normalization::Symmetric);

    // Mean-field inference; q_out: n_labels × n_pixels probabilities. q_init (same layout, may be null): start from
    // these probabilities instead of softmax(-U), e.g. the previous video frame's result (warm start).
    void inference(int n_iterations, float* q_out, const float* q_init = nullptr);
    // Q = softmax(-U) (the starting point of inference).
    void start_inference(float* q_out);
    // One mean-field update of q (n_labels × n_pixels) in place; q may come from another frame.
    void step_inference(float* q);
    // KL divergence of q to the CRF distribution, up to its constant log Z (pydensecrf's klDivergence).
    double kl_divergence(const float* q);
    // Record the time of each later phase in `profile` (null: stop); it must outlive its use.
    void set_profile(Profile* profile);
    // Keep the lattice kernels' vertex values in half precision (IEEE binary16, arithmetic in float) from the next
    // step on: about a tenth faster on large lattices, probabilities within a few 1e-3 of float (argmax 99.999 %;
    // see docs/crf.md). Returns whether they are used: only where the CPU converts in vector instructions (x86-64 with
    // AVX2 and F16C, AArch64). Off by default (float, as pydensecrf); refine() turns it on (RefineParams::half_rows).
    bool set_half_rows(bool on);

  protected:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

// Smoothness-kernel lattices kept for reuse. The smoothness kernel depends on the image size, sigmas, Potts weight
// and normalisation only, not on the image, so a CRF of the same geometry (video frames, a data set of same-sized
// images) copies the kept lattice instead of building it: the same result, bit for bit. Holds up to `capacity`
// geometries (the least recently used is dropped); thread-safe. About 16 MiB per entry at 500x375.
class LatticeCache {
  public:
    explicit LatticeCache(std::size_t capacity = 1);
    ~LatticeCache();
    LatticeCache(const LatticeCache&) = delete;
    LatticeCache& operator=(const LatticeCache&) = delete;

    // The cache DenseCRF2D uses unless given another: one entry, shared by the whole process.
    static LatticeCache& process_default();

    std::size_t capacity() const;
    std::size_t size() const;
    std::size_t memory_bytes() const;
    void clear();

  private:
    friend class DenseCRF2D;
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

class DenseCRF2D : public DenseCRF {
  public:
    // cache: where add_pairwise_gaussian finds and keeps smoothness lattices (null: none).
    DenseCRF2D(int width, int height, int n_labels, LatticeCache* cache = &LatticeCache::process_default());
    int width() const { return width_; }
    int height() const { return height_; }

    // Features (x / sx, y / sy), filtered as `filter` says; a lattice is taken from or kept in the CRF's
    // LatticeCache.
    void add_pairwise_gaussian(float sx, float sy, const Compatibility& compat, KernelType kernel = KernelType::Diag,
                               Normalization normalization = Normalization::Symmetric,
                               GaussianFilter filter = GaussianFilter::Auto);
    // Features (x / sx, y / sy, c0 / s0, c1 / s1, c2 / s2); image: height × width × 3 uint8.
    void add_pairwise_bilateral(float sx, float sy, float s0, float s1, float s2, const std::uint8_t* image,
                                const Compatibility& compat, KernelType kernel = KernelType::Diag,
                                Normalization normalization = Normalization::Symmetric);

  private:
    int width_, height_;
    LatticeCache* cache_;
};

// Empties LatticeCache::process_default().
void clear_lattice_cache();

// The usual DeepLab set-up: a smoothness (Gaussian) and an appearance (bilateral) Potts kernel.
struct RefineParams {
    int iterations = 10;
    float gaussian_sxy = 1.f, gaussian_weight = 3.f;
    float bilateral_sxy = 67.f, bilateral_srgb = 3.f, bilateral_weight = 4.f;
    Normalization normalization = Normalization::Symmetric;
    float clip = 1e-5f;  // probabilities are clipped to [clip, 1] before -log
    // Resolution of the CRF relative to the image, in (0, 1]: below 1 the image, probabilities and warm start are
    // area-averaged to round(scale * size), mean field runs there with the position sigmas scaled alike, and its
    // pairwise message (log Q - log P) is upsampled bilinearly and added to the full-resolution unary:
    // out = softmax(log P + up(log Q_small - log P_small)). A cheaper CRF for video.
    float scale = 1.f;
    // Lattice vertex values in half precision where the CPU converts in vector instructions (DenseCRF::set_half_rows:
    // faster, argmax within 0.001 % of float); false: float, pydensecrf's precision.
    bool half_rows = true;

    static RefineParams voc();         // DeepLab v2 on PASCAL VOC: 10 it., w=3 s=1, w=4 sxy=67 srgb=3
    static RefineParams pydensecrf();  // pydensecrf's example: 5 it., w=3 s=3, w=10 sxy=80 srgb=13
    // The CRF for video sources, derived from the per-image `params` (used unless iterations, a scale or warm start
    // are asked for explicitly): kVideoIterations iterations at kVideoScale resolution, each frame on its own (a warm
    // start from the previous frame lost accuracy on moving objects; 3/4 resolution lost 0.3 mIoU points against 10
    // iterations at full resolution, half resolution 0.6). Chosen from benchmarks/video_crf.py (docs/crf.md).
    static RefineParams video(RefineParams params);
    static constexpr int kVideoIterations = 3;
    static constexpr float kVideoScale = 0.75f;

    // std::invalid_argument naming the first bad field: iterations < 0, a sigma not finite and > 0, a weight not
    // finite, a normalization outside [0, 3], clip or scale outside (0, 1]. refine() checks its parameters with it.
    void validate() const;
};

// Per-call context of refine(); the defaults suit a single image.
struct RefineOptions {
    const float* init =
        nullptr;  // n_labels × height × width: mean field starts from it (warm start), not from the unary
    LatticeCache* cache = &LatticeCache::process_default();  // null: no smoothness lattice is kept or reused
    int threads = 0;             // at most this many threads (see ThreadScope); 0: the process-wide count
    Profile* profile = nullptr;  // filled with the time per phase when not null
};

// probs, out: n_labels × height × width (out may alias probs); image: height × width × 3 uint8.
void refine(const std::uint8_t* image, int width, int height, const float* probs, int n_labels,
            const RefineParams& params, float* out, const RefineOptions& options = {});

}  // namespace deeplab::crf
