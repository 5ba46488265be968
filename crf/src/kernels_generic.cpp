// 4-lane kernels (SSE2 on x86-64, NEON on aarch64) and the run-time choice of kernel variant.
#define DEEPLAB_CRF_KERNELS_IMPL
#include "kernels.hpp"

namespace deeplab::crf::detail {

const Kernels& generic_kernels() {
    static const Kernels k = make_kernels<4>();
    return k;
}

#if !DEEPLAB_CRF_HAVE_AVX2
const Kernels* avx2_kernels() {
    return nullptr;
}
#endif

const Kernels& kernels_for(int stride) {
#if DEEPLAB_CRF_HAVE_AVX2
    static const bool usable = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    if (usable && stride % 8 == 0) return *avx2_kernels();
#endif
    (void)stride;
    return generic_kernels();
}

}  // namespace deeplab::crf::detail
