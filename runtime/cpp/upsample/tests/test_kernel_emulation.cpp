// Runs the CUDA kernels of runtime/kernels/bilinear_softmax.cu on the CPU, one emulated thread at a time, and
// compares them with the C++ CPU implementation: the kernels' indexing and arithmetic are checked on machines
// without a GPU (the GPU itself is exercised by the gpu-marked Python tests).
#include <algorithm>
#include <cmath>
#include <math.h>
#include <cstdint>
#include <cstdio>
#include <vector>

#include "deeplab/upsample.hpp"

// The CUDA vocabulary the kernel file uses, for a host compiler. CUDA builds have already defined these for nvcc's host
// pass (cuda_runtime_api.h, through deeplab/upsample.hpp); the emulation replaces them.
#undef __global__
#undef __device__
#undef __forceinline__
#undef __restrict__
#define __global__
#define __device__
#define __forceinline__ inline
#define __restrict__
struct EmulatedDim3 {
    unsigned x = 0, y = 0, z = 0;
};
static EmulatedDim3 blockIdx, blockDim, threadIdx;
using std::min;  // expf, floorf, fmaf, fmaxf, fminf: <math.h>

#include "bilinear_softmax.cu"  // runtime/kernels (an include directory of this test)

namespace {

template <typename Kernel, typename Out>
void launch(Kernel kernel, const float* in, Out* out, const deeplab::UpsampleShape& s, bool ac) {
    blockDim = {32, 8, 1};
    const unsigned gx = (s.cols() + 31) / 32, gy = (s.rows() + 7) / 8;
    for (unsigned z = 0; z < static_cast<unsigned>(s.n); ++z)
        for (unsigned by = 0; by < gy; ++by)
            for (unsigned bx = 0; bx < gx; ++bx)
                for (unsigned ty = 0; ty < blockDim.y; ++ty)
                    for (unsigned tx = 0; tx < blockDim.x; ++tx) {
                        blockIdx = {bx, by, z};
                        threadIdx = {tx, ty, 0};
                        kernel(in, out, s.c, s.in_h, s.in_w, s.out_h, s.out_w, s.rows(), s.cols(), ac ? 1 : 0);
                    }
}

int failures = 0;

template <typename T>
void expect_close(const std::vector<T>& a, const std::vector<T>& b, double tol, const char* what) {
    double worst = 0;
    for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::fabs(double(a[i]) - double(b[i])));
    if (a.size() != b.size() || worst > tol) {
        std::fprintf(stderr, "%s: max difference %g (tolerance %g)\n", what, worst, tol);
        ++failures;
    }
}

}  // namespace

int main() {
    const deeplab::UpsampleShape shapes[] = {{1, 21, 41, 41, 321, 321, 0, 0},
                                             {2, 5, 7, 9, 56, 72, 50, 61},
                                             {1, 3, 6, 4, 1, 1, 0, 0},
                                             {1, 4, 5, 6, 5, 6, 0, 0}};
    for (const auto& s : shapes) {
        std::vector<float> in(size_t(s.n) * s.c * s.in_h * s.in_w);
        unsigned seed = 7;
        for (auto& v : in) v = static_cast<float>((seed = seed * 1664525u + 1013904223u) >> 9) / 1048576.f * 8.f - 32.f;
        const size_t planar = size_t(s.n) * s.c * s.rows() * s.cols(), labels = size_t(s.n) * s.rows() * s.cols();
        for (bool ac : {false, true}) {
            std::vector<float> cpu(planar), gpu(planar);
            deeplab::bilinear(in.data(), cpu.data(), s, ac);
            launch(deeplab_bilinear, in.data(), gpu.data(), s, ac);
            expect_close(cpu, gpu, 1e-5, "bilinear");
            deeplab::bilinear_softmax(in.data(), cpu.data(), s, ac);
            launch(deeplab_bilinear_softmax, in.data(), gpu.data(), s, ac);
            expect_close(cpu, gpu, 1e-6, "bilinear_softmax");
            std::vector<std::uint8_t> l8(labels), g8(labels);
            std::vector<std::int32_t> l32(labels), g32(labels);
            deeplab::bilinear_argmax(in.data(), l8.data(), s, ac);
            deeplab::bilinear_argmax(in.data(), l32.data(), s, ac);
            launch(deeplab_bilinear_argmax_u8, in.data(), g8.data(), s, ac);
            launch(deeplab_bilinear_argmax_i32, in.data(), g32.data(), s, ac);
            expect_close(l8, g8, 0, "argmax_u8");
            expect_close(l32, g32, 0, "argmax_i32");
        }
    }
    if (failures) return 1;
    std::printf("kernel emulation: all checks passed\n");
    return 0;
}
