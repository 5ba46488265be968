// nanobind module `crf._crf_gpu` (CUDA builds only): the GPU CRF (crf/gpu.hpp) for crf.refine(device="cuda").
// Arrays on the host (numpy) or on the GPU (DLPack, e.g. torch / CuPy CUDA tensors): GPU inputs are read where they
// are and the result stays there (a DLPack array, torch.from_dlpack / cupy.from_dlpack take it); host inputs get a
// numpy result. One GpuRefiner (workspace) per calling thread.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>

#include <cuda_runtime.h>

#include <memory>
#include <optional>
#include <stdexcept>
#include <string>

#include "crf/gpu.hpp"
#include "params.hpp"

namespace nb = nanobind;
using namespace deeplab::crf;

namespace {

template <class T, int N>
using Array = nb::ndarray<const T, nb::ndim<N>, nb::c_contig>;

template <class A>
bool on_gpu(const A& a) {
    return a.device_type() == nb::device::cuda::value;
}

GpuRefiner& thread_refiner() {
    thread_local std::unique_ptr<GpuRefiner> refiner;
    if (!refiner) refiner = std::make_unique<GpuRefiner>(GpuSystem::Cuda);
    return *refiner;
}

nb::object refine(const Array<std::uint8_t, 3>& image, const Array<float, 3>& probs,
                  std::optional<Array<float, 3>> init, const RefineParams& params) {
    const int height = static_cast<int>(image.shape(0)), width = static_cast<int>(image.shape(1));
    const int labels = static_cast<int>(probs.shape(0));
    if (image.shape(2) != 3 || probs.shape(1) != image.shape(0) || probs.shape(2) != image.shape(1))
        throw std::invalid_argument("image must be H x W x 3 and probs n_labels x H x W");
    const bool device = on_gpu(probs);
    if (on_gpu(image) != device || (init && on_gpu(*init) != device))
        throw std::invalid_argument("image, probs and init must all be on the host or all on the GPU");
    if (init && init->size() != probs.size()) throw std::invalid_argument("init must have the shape of probs");
    const std::size_t count = probs.size();
    float* out = nullptr;
    nb::capsule owner;
    if (device) {
        if (cudaMalloc(&out, count * sizeof(float)) != cudaSuccess) throw std::bad_alloc();
        owner = nb::capsule(out, [](void* p) noexcept { cudaFree(p); });
    } else {
        out = new float[count];
        owner = nb::capsule(out, [](void* p) noexcept { delete[] static_cast<float*>(p); });
    }
    {
        nb::gil_scoped_release nogil;
        thread_refiner().refine(image.data(), width, height, probs.data(), labels, params, out,
                                init ? init->data() : nullptr);
    }
    const std::size_t shape[3] = {static_cast<std::size_t>(labels), static_cast<std::size_t>(height),
                                  static_cast<std::size_t>(width)};
    if (device)
        return nb::cast(nb::ndarray<float, nb::ndim<3>>(out, 3, shape, owner, nullptr, nb::dtype<float>(),
                                                        nb::device::cuda::value));
    return nb::cast(nb::ndarray<nb::numpy, float, nb::ndim<3>>(out, 3, shape, owner));
}

// Seconds per phase of one refine() of host arrays (a warm refiner: the workspace exists after the first call).
nb::dict profile_refine(const Array<std::uint8_t, 3>& image, const Array<float, 3>& probs, const RefineParams& params) {
    GpuProfile profile;
    GpuRefiner& refiner = thread_refiner();
    refiner.set_profile(&profile);
    try {
        refine(image, probs, std::nullopt, params);
    } catch (...) {
        refiner.set_profile(nullptr);
        throw;
    }
    refiner.set_profile(nullptr);
    nb::dict d;
    d["upload"] = profile.upload;
    d["unary"] = profile.unary;
    d["lattice"] = profile.lattice;
    d["normalisation"] = profile.normalisation;
    d["splat"] = profile.splat;
    d["blur"] = profile.blur;
    d["slice"] = profile.slice;
    d["download"] = profile.download;
    d["bilateral_vertices"] = profile.vertices;
    return d;
}

}  // namespace

NB_MODULE(_crf_gpu, m) {
    nb::register_exception_translator([](const std::exception_ptr& p, void*) {
        try {
            std::rethrow_exception(p);
        } catch (const std::invalid_argument& e) {
            PyErr_SetString(PyExc_ValueError, e.what());
        } catch (const std::overflow_error& e) {
            PyErr_SetString(PyExc_OverflowError, e.what());
        }
    });
    m.def("cuda_available", &cuda_available);
    // refine(image, probs, init, iterations, gaussian_sxy, ...): the fields of RefineParams, in its order.
    m.def(
        "refine",
        [](const Array<std::uint8_t, 3>& image, const Array<float, 3>& probs, std::optional<Array<float, 3>> init,
           int iterations, float gaussian_sxy, float gaussian_weight, float bilateral_sxy, float bilateral_srgb,
           float bilateral_weight, int normalization, float clip, float scale, bool half_rows) {
            return refine(image, probs, init,
                          params_from(iterations, gaussian_sxy, gaussian_weight, bilateral_sxy, bilateral_srgb,
                                      bilateral_weight, normalization, clip, scale, half_rows));
        },
        nb::arg("image"), nb::arg("probs"), nb::arg("init").none(), nb::arg("iterations"), nb::arg("gaussian_sxy"),
        nb::arg("gaussian_weight"), nb::arg("bilateral_sxy"), nb::arg("bilateral_srgb"), nb::arg("bilateral_weight"),
        nb::arg("normalization"), nb::arg("clip"), nb::arg("scale"), nb::arg("half_rows"));
    m.def("profile_refine", [](const Array<std::uint8_t, 3>& image, const Array<float, 3>& probs, int iterations,
                               float gaussian_sxy, float gaussian_weight, float bilateral_sxy, float bilateral_srgb,
                               float bilateral_weight, int normalization, float clip, float scale, bool half_rows) {
        return profile_refine(image, probs,
                              params_from(iterations, gaussian_sxy, gaussian_weight, bilateral_sxy, bilateral_srgb,
                                          bilateral_weight, normalization, clip, scale, half_rows));
    });
}
