// GpuUpsample: the CUDA kernels of deeplab::upsample (runtime/kernels/bilinear_softmax.cu) on logits a TensorRT
// engine left in device memory. Without CUDA this class is never usable.
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

}  // namespace

struct GpuUpsample::Impl {
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

bool GpuUpsample::usable(const LogitsView& logits) { return logits.device_data != nullptr; }

void GpuUpsample::softmax(const LogitsView& l, const Padding& p, bool align_corners, std::vector<float>& probs) {
  const auto stream = static_cast<cudaStream_t>(l.cuda_stream);
  probs.resize(static_cast<size_t>(l.channels) * p.height * p.width);
  auto* out = static_cast<float*>(impl_->reserve(probs.size() * sizeof(float)));
  check(bilinear_softmax_cuda(l.device_data, out, upsample_shape(l, p), align_corners, stream), "bilinear_softmax_cuda");
  check(cudaMemcpyAsync(probs.data(), out, probs.size() * sizeof(float), cudaMemcpyDeviceToHost, stream),
        "cudaMemcpyAsync");
  check(cudaStreamSynchronize(stream), "cudaStreamSynchronize");
}

void GpuUpsample::labels(const LogitsView& l, const Padding& p, bool align_corners, std::uint8_t* labels) {
  const auto stream = static_cast<cudaStream_t>(l.cuda_stream);
  const size_t n = static_cast<size_t>(p.height) * p.width;
  auto* out = static_cast<std::uint8_t*>(impl_->reserve(n));
  check(bilinear_argmax_cuda(l.device_data, out, upsample_shape(l, p), align_corners, stream), "bilinear_argmax_cuda");
  check(cudaMemcpyAsync(labels, out, n, cudaMemcpyDeviceToHost, stream), "cudaMemcpyAsync");
  check(cudaStreamSynchronize(stream), "cudaStreamSynchronize");
}

#else  // CPU-only build

struct GpuUpsample::Impl {};
bool GpuUpsample::usable(const LogitsView&) { return false; }
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
