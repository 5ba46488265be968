// The dense CRF of crf.hpp's refine() for the GPU: the same model (lattice, normalisation, Potts compatibility,
// presets, image-space smoothness Gaussian, half-precision vertex rows), written once on Thrust (CCCL) as algorithms
// and functors. The same source builds for CUDA (nvcc) and for Thrust's host systems (plain C++, serial or OpenMP),
// which is how machines without a GPU test it.
//
// Deterministic by construction: the lattice is built by sorting its vertex keys and de-duplicating them (no hash
// table), splats are per-vertex gathers over the sorted entries in point order, the blur reads one buffer and writes
// another, and nothing is summed with atomics: the same input gives the same bits on every run, every thread count
// and every GPU (the CUDA build compiles without fused multiply-add contraction, as the host builds do).
#pragma once

#include <cstdint>
#include <memory>

#include "crf/crf.hpp"

namespace deeplab::crf {

// Where a GpuRefiner runs: CUDA, or Thrust's host systems (the same algorithms on the CPU).
enum class GpuSystem : int { Cuda = 0, HostSerial = 1, HostOpenMP = 2 };

// Whether this build has the system compiled in (Cuda: built with WITH_CUDA).
bool gpu_system_compiled(GpuSystem system);
// Whether refine() can run on CUDA here: compiled in, a device present, and a probe kernel ran on it.
bool cuda_available();

// Seconds per phase, added up over refine() calls (each phase ends with a device synchronisation when timed).
struct GpuProfile {
    double upload = 0, unary = 0, lattice = 0, normalisation = 0, splat = 0, blur = 0, slice = 0, download = 0;
    std::int64_t vertices = 0;  // bilateral lattice vertices of the last frame
    int frames = 0;
};

// A workspace for one image size (reallocated only when the size or label count changes), reused across frames:
// video frames of one stream allocate nothing after the first. Each frame builds its bilateral lattice once and
// reuses it across the mean-field iterations; a smoothness lattice (sigma above 4/3) is kept while the geometry is
// unchanged. Not thread-safe: one refiner per stream.
class GpuRefiner {
  public:
    // std::runtime_error when the system is not compiled in (see gpu_system_compiled) or, for Cuda, no device runs it.
    explicit GpuRefiner(GpuSystem system = GpuSystem::Cuda);
    ~GpuRefiner();
    GpuRefiner(const GpuRefiner&) = delete;
    GpuRefiner& operator=(const GpuRefiner&) = delete;

    GpuSystem system() const;

    // refine() of crf.hpp (same layouts, same parameters, out may alias probs): image height x width x 3 uint8, probs
    // and out n_labels x height x width; init (may be null) the warm start; labels (may be null) height x width
    // argmax of the result (lowest label on ties). out may be null when labels is not. Each pointer may point to host
    // or to device memory (CUDA's unified addressing tells them apart): frames already on the GPU are read and written
    // there, without a copy through the host.
    // RefineParams::scale below 1 runs the reduced-resolution CRF as the CPU does. Labels: 1 to kMaxLabels.
    void refine(const std::uint8_t* image, int width, int height, const float* probs, int n_labels,
                const RefineParams& params, float* out, const float* init = nullptr, std::int32_t* labels = nullptr);
    // Record the time of each later phase in `profile` (null: stop); it must outlive its use.
    void set_profile(GpuProfile* profile);

    static constexpr int kMaxLabels = 64;

    struct Backend;

  private:
    GpuSystem system_;
    std::unique_ptr<Backend> backend_;
};

}  // namespace deeplab::crf
