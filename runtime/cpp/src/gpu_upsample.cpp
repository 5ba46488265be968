// GpuUpsample: the CUDA kernels of deeplab::upsample (runtime/kernels/bilinear_softmax.cu) on logits a TensorRT
// engine left in device memory. Without CUDA, or without a kernel image for the GPU, this class is never usable.
#include <cstdio>
#include <string>

#include "deeplab/error.hpp"
#include "deeplab/upsample.hpp"
#include "stages.hpp"

#ifdef DEEPLAB_WITH_CUDA
#include <cuda_runtime_api.h>
#endif

namespace deeplab {

#ifdef DEEPLAB_WITH_CUDA
namespace {

void check(cudaError_t rc, const char* what) {
    if (rc != cudaSuccess) throw Error(ErrorCode::engine, std::string(what) + " failed: " + cudaGetErrorString(rc));
}

/// Whether the kernels run on the current device; when they cannot, says so once on stderr (the CPU upsamples).
bool probe_kernels() {
    const cudaError_t rc = cuda_kernels_available();
    if (rc == cudaSuccess) return true;
    int device = 0, major = 0, minor = 0;
    std::string gpu = "this GPU";
    if (cudaGetDevice(&device) == cudaSuccess &&
        cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) == cudaSuccess &&
        cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device) == cudaSuccess)
        gpu += " (compute capability " + std::to_string(major) + "." + std::to_string(minor) +
               "; rebuild with -DCMAKE_CUDA_ARCHITECTURES=" + std::to_string(major * 10 + minor) +
               " to upsample on it)";
    std::fprintf(stderr, "warning: the CUDA upsampling kernels cannot run on %s: %s (%s); upsampling on the CPU\n",
                 gpu.c_str(), cudaGetErrorString(rc), cudaGetErrorName(rc));
    cudaGetLastError();  // the probe's error is handled here, not by the next CUDA call's caller
    return false;
}

}  // namespace

struct GpuUpsample::Impl {
    enum class Kernels { unknown, usable, unusable } kernels = Kernels::unknown;
    void* buffer = nullptr;
    size_t bytes = 0;
    void* reserve(size_t n) {
        if (n > bytes) {
            if (buffer) cudaFree(buffer);
            buffer = nullptr;
            bytes = 0;
            check(cudaMalloc(&buffer, n), "cudaMalloc");
            bytes = n;
        }
        return buffer;
    }
    ~Impl() {
        if (buffer) cudaFree(buffer);
    }
};

bool GpuUpsample::usable(const LogitsView& logits) {
    if (logits.device_data == nullptr) return false;
    if (impl_->kernels == Impl::Kernels::unknown)
        impl_->kernels = probe_kernels() ? Impl::Kernels::usable : Impl::Kernels::unusable;
    return impl_->kernels == Impl::Kernels::usable;
}

void GpuUpsample::softmax(const LogitsView& l, const Padding& p, bool align_corners, std::vector<float>& probs) {
    const auto stream = static_cast<cudaStream_t>(l.cuda_stream);
    probs.resize(static_cast<size_t>(l.channels) * p.height * p.width);
    auto* out = static_cast<float*>(impl_->reserve(probs.size() * sizeof(float)));
    check(bilinear_softmax_cuda(l.device_data, out, upsample_shape(l, p), align_corners, stream),
          "bilinear_softmax_cuda");
    check(cudaMemcpyAsync(probs.data(), out, probs.size() * sizeof(float), cudaMemcpyDeviceToHost, stream),
          "cudaMemcpyAsync");
    check(cudaStreamSynchronize(stream), "cudaStreamSynchronize");
}

void GpuUpsample::labels(const LogitsView& l, const Padding& p, bool align_corners, std::uint8_t* labels) {
    const auto stream = static_cast<cudaStream_t>(l.cuda_stream);
    const size_t n = static_cast<size_t>(p.height) * p.width;
    auto* out = static_cast<std::uint8_t*>(impl_->reserve(n));
    check(bilinear_argmax_cuda(l.device_data, out, upsample_shape(l, p), align_corners, stream),
          "bilinear_argmax_cuda");
    check(cudaMemcpyAsync(labels, out, n, cudaMemcpyDeviceToHost, stream), "cudaMemcpyAsync");
    check(cudaStreamSynchronize(stream), "cudaStreamSynchronize");
}

#else  // CPU-only build

struct GpuUpsample::Impl {};
bool GpuUpsample::usable(const LogitsView&) {
    return false;
}
void GpuUpsample::softmax(const LogitsView&, const Padding&, bool, std::vector<float>&) {
    throw Error(ErrorCode::unsupported, "this build has no CUDA upsampling");
}
void GpuUpsample::labels(const LogitsView&, const Padding&, bool, std::uint8_t*) {
    throw Error(ErrorCode::unsupported, "this build has no CUDA upsampling");
}

#endif

GpuUpsample::GpuUpsample() : impl_(std::make_unique<Impl>()) {}
GpuUpsample::~GpuUpsample() = default;

}  // namespace deeplab
