// 8-lane kernels, compiled with -mavx2 -mfma -mf16c (x86-64 only) and used when the CPU supports them.
#define DEEPLAB_CRF_KERNELS_IMPL
#include "kernels.hpp"

namespace deeplab::crf::detail {

const Kernels* avx2_kernels() {
    static const Kernels k = [] {
        Kernels table = make_kernels<8>();
        if (!__builtin_cpu_supports("f16c")) {  // every AVX2 CPU has had it; the half rows need it
            table.splat_half = nullptr;
            table.blur_half = nullptr;
            table.grid_filter_half = nullptr;
        }
        return table;
    }();
    return &k;
}

}  // namespace deeplab::crf::detail
