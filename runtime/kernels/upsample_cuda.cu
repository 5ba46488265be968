// Host wrappers that launch the kernels of bilinear_softmax.cu, beside this file (the same source NVRTC compiles for
// the Python runtime: runtime/upsample_cuda.py), for the C++ runtime.
#include "deeplab/upsample.hpp"

#include "bilinear_softmax.cu"

namespace deeplab {
namespace {

constexpr int kBlockX = 32, kBlockY = 8;

template <typename Kernel, typename Out>
cudaError_t launch(Kernel kernel, const float* in, Out* out, const UpsampleShape& s, bool align_corners,
                   cudaStream_t stream) {
    if (s.n < 1 || s.c < 1 || s.in_h < 1 || s.in_w < 1 || s.out_h < 1 || s.out_w < 1 || s.crop_h < 0 || s.crop_w < 0 ||
        s.crop_h > s.out_h || s.crop_w > s.out_w || s.n > 65535)
        return cudaErrorInvalidValue;
    const dim3 block(kBlockX, kBlockY);
    const dim3 grid((s.cols() + kBlockX - 1) / kBlockX, (s.rows() + kBlockY - 1) / kBlockY, s.n);
    kernel<<<grid, block, 0, stream>>>(in, out, s.c, s.in_h, s.in_w, s.out_h, s.out_w, s.rows(), s.cols(),
                                       align_corners ? 1 : 0);
    return cudaGetLastError();
}

}  // namespace

cudaError_t cuda_kernels_available() {
    cudaFuncAttributes attributes{};
    return cudaFuncGetAttributes(&attributes, deeplab_bilinear_softmax);
}

cudaError_t bilinear_cuda(const float* in, float* out, const UpsampleShape& s, bool ac, cudaStream_t stream) {
    return launch(deeplab_bilinear, in, out, s, ac, stream);
}

cudaError_t bilinear_softmax_cuda(const float* in, float* out, const UpsampleShape& s, bool ac, cudaStream_t stream) {
    return launch(deeplab_bilinear_softmax, in, out, s, ac, stream);
}

cudaError_t bilinear_argmax_cuda(const float* in, std::uint8_t* labels, const UpsampleShape& s, bool ac,
                                 cudaStream_t stream) {
    if (s.c > 256) return cudaErrorInvalidValue;
    return launch(deeplab_bilinear_argmax_u8, in, labels, s, ac, stream);
}

cudaError_t bilinear_argmax_cuda(const float* in, std::int32_t* labels, const UpsampleShape& s, bool ac,
                                 cudaStream_t stream) {
    return launch(deeplab_bilinear_argmax_i32, in, labels, s, ac, stream);
}

}  // namespace deeplab
