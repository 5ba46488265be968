// Bilinear upsampling of N×C×h×w float32 logits fused with softmax or argmax over C (CPU; CUDA with WITH_CUDA).
//
// Semantics equal torch.nn.functional.interpolate(mode="bilinear", size=(H, W), align_corners=...) followed by
// softmax / argmax over C, restricted to the top-left crop_h×crop_w of the H×W result: the network input was padded
// to a multiple of the output stride, so the logits are upsampled to the padded size and cropped back to the image.
#pragma once

#include <cstdint>

#ifdef DEEPLAB_WITH_CUDA
#include <cuda_runtime_api.h>
#endif

namespace deeplab {

struct UpsampleShape {
    int n = 1;       // batch
    int c = 1;       // channels (classes)
    int in_h = 1;    // logits height
    int in_w = 1;    // logits width
    int out_h = 1;   // upsampled (padded) height H
    int out_w = 1;   // upsampled (padded) width W
    int crop_h = 0;  // rows actually computed, ≤ out_h (0 = out_h)
    int crop_w = 0;  // cols actually computed, ≤ out_w (0 = out_w)

    int rows() const { return crop_h > 0 ? crop_h : out_h; }
    int cols() const { return crop_w > 0 ? crop_w : out_w; }
};

// Throws std::invalid_argument for non-positive sizes or a crop larger than the output.
void validate(const UpsampleShape& shape);

// Worker threads for the CPU functions: 0 = all hardware threads (the default).
void set_num_threads(int threads);
int num_threads();

// out: n×c×rows×cols. in: n×c×in_h×in_w, both C-contiguous.
void bilinear(const float* in, float* out, const UpsampleShape& shape, bool align_corners);
void bilinear_softmax(const float* in, float* out, const UpsampleShape& shape, bool align_corners);
// labels: n×rows×cols, argmax over c (first maximum wins). The uint8 form needs c ≤ 256.
void bilinear_argmax(const float* in, std::uint8_t* labels, const UpsampleShape& shape, bool align_corners);
void bilinear_argmax(const float* in, std::int32_t* labels, const UpsampleShape& shape, bool align_corners);

#ifdef DEEPLAB_WITH_CUDA
// Whether the kernels can run on the current device: cudaSuccess, or cudaFuncGetAttributes' error
// (cudaErrorNoKernelImageForDevice when this build holds no image or PTX for the GPU's architecture).
cudaError_t cuda_kernels_available();

// The same operations on device pointers, asynchronous on `stream` (kernels: runtime/kernels/bilinear_softmax.cu).
cudaError_t bilinear_cuda(const float* in, float* out, const UpsampleShape& shape, bool align_corners,
                          cudaStream_t stream = nullptr);
cudaError_t bilinear_softmax_cuda(const float* in, float* out, const UpsampleShape& shape, bool align_corners,
                                  cudaStream_t stream = nullptr);
cudaError_t bilinear_argmax_cuda(const float* in, std::uint8_t* labels, const UpsampleShape& shape, bool align_corners,
                                 cudaStream_t stream = nullptr);
cudaError_t bilinear_argmax_cuda(const float* in, std::int32_t* labels, const UpsampleShape& shape, bool align_corners,
                                 cudaStream_t stream = nullptr);
#endif

}  // namespace deeplab
