// nanobind module runtime._upsample: the CPU upsampling of deeplab/upsample.hpp for runtime/upsample.py.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>

#include <cstdint>

#include "deeplab/upsample.hpp"

namespace nb = nanobind;

namespace {

using Logits = nb::ndarray<const float, nb::ndim<4>, nb::c_contig, nb::device::cpu>;

template <typename T>
nb::ndarray<nb::numpy, T> empty(std::initializer_list<size_t> shape) {
    size_t count = 1;
    for (size_t d : shape) count *= d;
    T* data = new T[count > 0 ? count : 1];
    nb::capsule owner(data, [](void* p) noexcept { delete[] static_cast<T*>(p); });
    return nb::ndarray<nb::numpy, T>(data, shape, owner);
}

deeplab::UpsampleShape shape_of(const Logits& x, int out_h, int out_w, int crop_h, int crop_w) {
    deeplab::UpsampleShape s;
    s.n = static_cast<int>(x.shape(0));
    s.c = static_cast<int>(x.shape(1));
    s.in_h = static_cast<int>(x.shape(2));
    s.in_w = static_cast<int>(x.shape(3));
    s.out_h = out_h;
    s.out_w = out_w;
    s.crop_h = crop_h;
    s.crop_w = crop_w;
    deeplab::validate(s);
    return s;
}

template <typename Fn>
nb::ndarray<nb::numpy, float> planar(Fn fn, const Logits& x, int out_h, int out_w, int crop_h, int crop_w, bool ac) {
    const auto s = shape_of(x, out_h, out_w, crop_h, crop_w);
    auto out = empty<float>({size_t(s.n), size_t(s.c), size_t(s.rows()), size_t(s.cols())});
    {
        nb::gil_scoped_release release;
        fn(x.data(), out.data(), s, ac);
    }
    return out;
}

template <typename Label>
nb::ndarray<nb::numpy, Label> labels(const Logits& x, int out_h, int out_w, int crop_h, int crop_w, bool ac) {
    const auto s = shape_of(x, out_h, out_w, crop_h, crop_w);
    auto out = empty<Label>({size_t(s.n), size_t(s.rows()), size_t(s.cols())});
    {
        nb::gil_scoped_release release;
        deeplab::bilinear_argmax(x.data(), out.data(), s, ac);
    }
    return out;
}

}  // namespace

NB_MODULE(_upsample, m) {
    m.doc() = "Bilinear upsampling fused with softmax/argmax over classes (C++ CPU, multithreaded, GIL released)";
    m.def(
        "bilinear",
        [](const Logits& x, int oh, int ow, int ch, int cw, bool ac) {
            return planar(
                static_cast<void (*)(const float*, float*, const deeplab::UpsampleShape&, bool)>(deeplab::bilinear), x,
                oh, ow, ch, cw, ac);
        },
        nb::arg("x"), nb::arg("out_h"), nb::arg("out_w"), nb::arg("crop_h"), nb::arg("crop_w"),
        nb::arg("align_corners"));
    m.def(
        "bilinear_softmax",
        [](const Logits& x, int oh, int ow, int ch, int cw, bool ac) {
            return planar(deeplab::bilinear_softmax, x, oh, ow, ch, cw, ac);
        },
        nb::arg("x"), nb::arg("out_h"), nb::arg("out_w"), nb::arg("crop_h"), nb::arg("crop_w"),
        nb::arg("align_corners"));
    m.def("bilinear_argmax_u8", &labels<std::uint8_t>, nb::arg("x"), nb::arg("out_h"), nb::arg("out_w"),
          nb::arg("crop_h"), nb::arg("crop_w"), nb::arg("align_corners"));
    m.def("bilinear_argmax_i32", &labels<std::int32_t>, nb::arg("x"), nb::arg("out_h"), nb::arg("out_w"),
          nb::arg("crop_h"), nb::arg("crop_w"), nb::arg("align_corners"));
    m.def("set_num_threads", &deeplab::set_num_threads, nb::arg("threads"),
          "Worker threads for the CPU upsampling (0 = all hardware threads).");
    m.def("num_threads", &deeplab::num_threads);
}
