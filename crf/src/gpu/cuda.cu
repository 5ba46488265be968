// The GPU CRF's algorithms on CUDA (the same source as the host systems' build), and the probe that tells whether a
// kernel runs on this machine's GPU.
#define DEEPLAB_CRF_GPU_NS cuda_system
#define DEEPLAB_CRF_GPU_FACTORY make_cuda
#include "engine.inl"

namespace deeplab::crf::gpu {
namespace {
__global__ void probe_kernel(int* out) {
    *out = 29;
}
}  // namespace

bool cuda_probe() {
    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) {
        cudaGetLastError();
        return false;
    }
    int* d = nullptr;
    if (cudaMalloc(&d, sizeof(int)) != cudaSuccess) {
        cudaGetLastError();
        return false;
    }
    probe_kernel<<<1, 1>>>(d);
    int h = 0;
    const bool ok = cudaGetLastError() == cudaSuccess &&
                    cudaMemcpy(&h, d, sizeof(int), cudaMemcpyDeviceToHost) == cudaSuccess && h == 29;
    cudaFree(d);
    cudaGetLastError();
    return ok;
}
}  // namespace deeplab::crf::gpu
