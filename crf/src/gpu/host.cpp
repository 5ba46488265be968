// The GPU CRF's algorithms on one of Thrust's host systems (built twice by CMake: serial and OpenMP), so machines
// without a GPU run and test the same source as the CUDA build.
#if !defined(DEEPLAB_CRF_GPU_NS) || !defined(DEEPLAB_CRF_GPU_FACTORY) || !defined(THRUST_CUB_WRAPPED_NAMESPACE)
#error \
    "host.cpp needs DEEPLAB_CRF_GPU_NS, DEEPLAB_CRF_GPU_FACTORY and THRUST_CUB_WRAPPED_NAMESPACE (see crf/CMakeLists.txt)"
#endif
#include "engine.inl"
