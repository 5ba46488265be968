// 8-lane kernels, compiled with -mavx2 -mfma (x86-64 only) and used when the CPU supports them.
#define DEEPLAB_CRF_KERNELS_IMPL
#include "kernels.hpp"

namespace deeplab::crf::detail {

const Kernels* avx2_kernels() {
    static const Kernels k = make_kernels<8>();
    return &k;
}

}  // namespace deeplab::crf::detail
