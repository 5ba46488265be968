// Bilinear upsampling of N×C×h×w float32 logits, fused with softmax over C or argmax over C.
//
// The one CUDA source of the toolkit: compiled at run time by NVRTC (runtime/upsample_cuda.py) and by nvcc for the C++
// runtime (runtime/cpp/upsample/src/upsample_cuda.cu #includes this file). So: no #include, no host code, only
// extern "C" __global__ kernels and the __device__ helpers they share.
//
// Semantics equal torch.nn.functional.interpolate(mode="bilinear") to size (H, W) with align_corners 0 or 1, but only
// the top-left out_h×out_w of the H×W result is computed (the crop that removes the network input's padding).
// Outputs are N×C×out_h×out_w (probabilities / values) or N×out_h×out_w (labels). One thread per output pixel;
// consecutive threads take consecutive x, so every global read and write of a warp is coalesced.

struct Tap {
    int i0, i1;    // source indices
    float l0, l1;  // their weights
};

// PyTorch's area_pixel_compute_scale / area_pixel_compute_source_index / guard_index_and_lambda, in float.
__device__ __forceinline__ Tap bilinear_tap(int dst, int in_size, int out_size, int align_corners) {
    Tap t;
    if (in_size == out_size) {
        t.i0 = dst;
        t.i1 = dst;
        t.l0 = 1.0f;
        t.l1 = 0.0f;
        return t;
    }
    float scale, src;
    if (align_corners) {
        scale = out_size > 1 ? (float)(in_size - 1) / (float)(out_size - 1) : 0.0f;
        src = scale * (float)dst;
    } else {
        scale = (float)in_size / (float)out_size;
        src = fmaxf(fmaf(scale, (float)dst + 0.5f, -0.5f), 0.0f);  // one rounding, as PyTorch's compiled CPU kernel
    }
    int i0 = min((int)floorf(src), in_size - 1);
    float l1 = fminf(fmaxf(src - (float)i0, 0.0f), 1.0f);
    t.i0 = i0;
    t.i1 = i0 + (i0 < in_size - 1 ? 1 : 0);
    t.l0 = 1.0f - l1;
    t.l1 = l1;
    return t;
}

__device__ __forceinline__ float bilinear_at(const float* __restrict__ plane, int w, Tap ty, Tap tx) {
    const float* r0 = plane + (long long)ty.i0 * w;
    const float* r1 = plane + (long long)ty.i1 * w;
    return ty.l0 * (tx.l0 * r0[tx.i0] + tx.l1 * r0[tx.i1]) + ty.l1 * (tx.l0 * r1[tx.i0] + tx.l1 * r1[tx.i1]);
}

// Thread → (n, y, x) over the n×out_h×out_w grid: blockIdx.z = n, 2-D blocks over (x, y).
#define DEEPLAB_PIXEL_PROLOGUE                            \
    const int x = blockIdx.x * blockDim.x + threadIdx.x;  \
    const int y = blockIdx.y * blockDim.y + threadIdx.y;  \
    const int n = blockIdx.z;                             \
    if (x >= out_w || y >= out_h) return;                 \
    const Tap ty = bilinear_tap(y, h, H, align_corners);  \
    const Tap tx = bilinear_tap(x, w, W, align_corners);  \
    const long long in_plane = (long long)h * w;          \
    const long long out_plane = (long long)out_h * out_w; \
    const float* src = in + (long long)n * C * in_plane;  \
    const long long pixel = (long long)y * out_w + x;

extern "C" __global__ void deeplab_bilinear(const float* __restrict__ in, float* __restrict__ out, int C, int h, int w,
                                            int H, int W, int out_h, int out_w, int align_corners) {
    DEEPLAB_PIXEL_PROLOGUE
    float* dst = out + (long long)n * C * out_plane + pixel;
    for (int c = 0; c < C; ++c) dst[c * out_plane] = bilinear_at(src + c * in_plane, w, ty, tx);
}

extern "C" __global__ void deeplab_bilinear_softmax(const float* __restrict__ in, float* __restrict__ out, int C, int h,
                                                    int w, int H, int W, int out_h, int out_w, int align_corners) {
    DEEPLAB_PIXEL_PROLOGUE
    float* dst = out + (long long)n * C * out_plane + pixel;
    float vmax = -3.402823466e38f;
    for (int c = 0; c < C; ++c) {
        const float v = bilinear_at(src + c * in_plane, w, ty, tx);
        dst[c * out_plane] = v;
        vmax = fmaxf(vmax, v);
    }
    float sum = 0.0f;
    for (int c = 0; c < C; ++c) {
        const float e = expf(dst[c * out_plane] - vmax);
        dst[c * out_plane] = e;
        sum += e;
    }
    const float inv = 1.0f / sum;
    for (int c = 0; c < C; ++c) dst[c * out_plane] *= inv;
}

// Labels = argmax over C of the upsampled logits (= of their softmax); the first maximum wins, as in numpy/torch.
#define DEEPLAB_ARGMAX_BODY                                         \
    DEEPLAB_PIXEL_PROLOGUE                                          \
    int best = 0;                                                   \
    float vbest = bilinear_at(src, w, ty, tx);                      \
    for (int c = 1; c < C; ++c) {                                   \
        const float v = bilinear_at(src + c * in_plane, w, ty, tx); \
        if (v > vbest) {                                            \
            vbest = v;                                              \
            best = c;                                               \
        }                                                           \
    }                                                               \
    labels[(long long)n * out_plane + pixel] = best;

extern "C" __global__ void deeplab_bilinear_argmax_u8(const float* __restrict__ in, unsigned char* __restrict__ labels,
                                                      int C, int h, int w, int H, int W, int out_h, int out_w,
                                                      int align_corners) {
    DEEPLAB_ARGMAX_BODY
}

extern "C" __global__ void deeplab_bilinear_argmax_i32(const float* __restrict__ in, int* __restrict__ labels, int C,
                                                       int h, int w, int H, int W, int out_h, int out_w,
                                                       int align_corners) {
    DEEPLAB_ARGMAX_BODY
}
