// GpuRefiner: picks the compiled system (DEEPLAB_CRF_GPU_OPENMP / DEEPLAB_CRF_GPU_CUDA say which are built in).
#include <stdexcept>

#include "backend.hpp"

namespace deeplab::crf {

bool gpu_system_compiled(GpuSystem system) {
    switch (system) {
        case GpuSystem::HostSerial:
            return true;
        case GpuSystem::HostOpenMP:
#ifdef DEEPLAB_CRF_GPU_OPENMP
            return true;
#else
            return false;
#endif
        case GpuSystem::Cuda:
#ifdef DEEPLAB_CRF_GPU_CUDA
            return true;
#else
            return false;
#endif
    }
    return false;
}

bool cuda_available() {
#ifdef DEEPLAB_CRF_GPU_CUDA
    static const bool ok = gpu::cuda_probe();
    return ok;
#else
    return false;
#endif
}

GpuRefiner::GpuRefiner(GpuSystem system) : system_(system) {
    if (!gpu_system_compiled(system))
        throw std::runtime_error(system == GpuSystem::Cuda ? "the CRF was built without CUDA (WITH_CUDA=OFF)"
                                                           : "the CRF was built without OpenMP");
    switch (system) {
        case GpuSystem::HostSerial:
            backend_ = gpu::make_host_serial();
            break;
        case GpuSystem::HostOpenMP:
#ifdef DEEPLAB_CRF_GPU_OPENMP
            backend_ = gpu::make_host_openmp();
#endif
            break;
        case GpuSystem::Cuda:
#ifdef DEEPLAB_CRF_GPU_CUDA
            if (!cuda_available()) throw std::runtime_error("no CUDA device runs the CRF's kernels here");
            backend_ = gpu::make_cuda();
#endif
            break;
    }
}

GpuRefiner::~GpuRefiner() = default;

GpuSystem GpuRefiner::system() const {
    return system_;
}

void GpuRefiner::refine(const std::uint8_t* image, int width, int height, const float* probs, int n_labels,
                        const RefineParams& params, float* out, const float* init, std::int32_t* labels) {
    backend_->refine(GpuRequest{image, width, height, probs, n_labels, params, out, init, labels});
}

void GpuRefiner::set_profile(GpuProfile* profile) {
    backend_->set_profile(profile);
}

}  // namespace deeplab::crf
