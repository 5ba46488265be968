// The interface each compiled system of the GPU CRF implements (engine.inl, built once per system), and the
// factories refiner.cpp dispatches to.
#pragma once

#include <cstdint>
#include <memory>

#include "crf/gpu.hpp"

namespace deeplab::crf {

// One call of GpuRefiner::refine.
struct GpuRequest {
    const std::uint8_t* image;
    int width, height;
    const float* probs;
    int n_labels;
    RefineParams params;
    float* out;
    const float* init;
    std::int32_t* labels;
};

struct GpuRefiner::Backend {
    virtual ~Backend() = default;
    virtual void refine(const GpuRequest& request) = 0;
    virtual void set_profile(GpuProfile* profile) = 0;
};

namespace gpu {
std::unique_ptr<GpuRefiner::Backend> make_host_serial();
std::unique_ptr<GpuRefiner::Backend> make_host_openmp();
std::unique_ptr<GpuRefiner::Backend> make_cuda();
bool cuda_probe();  // a device is present and a kernel ran on it
}  // namespace gpu

}  // namespace deeplab::crf
