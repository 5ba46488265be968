// nanobind module `crf._crf`: a thin, strict layer over the C++ library. Argument conversion,
// pydensecrf-style signatures and error messages live in the Python package (crf/densecrf.py);
// here every array is already float32/uint8/int32, C-contiguous and of the right shape.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/map.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <cstring>
#include <exception>
#include <memory>
#include <mutex>
#include <vector>

#include "crf/crf.hpp"
#include "crf/settings.hpp"
#include "params.hpp"
#include "../src/parallel.hpp"

namespace nb = nanobind;
using namespace deeplab::crf;

namespace {

template <class T, int N>
using In = nb::ndarray<const T, nb::ndim<N>, nb::c_contig, nb::device::cpu>;
using Out2 = nb::ndarray<nb::numpy, float, nb::ndim<2>>;
using Out3 = nb::ndarray<nb::numpy, float, nb::ndim<3>>;

// An output array's memory: large ones come from the CRF's buffer cache (crf/large_alloc.hpp) and go back to it when
// numpy frees the array, so a result per frame or per image reuses pages instead of faulting in fresh ones (after
// other code has freed memory, the C allocator hands out fresh pages: 3,900 faults for a 500x375, 21-label result).
float* new_buffer(std::size_t n, nb::capsule& owner) {
    auto* buffer = new LargeVector<float>(n > 0 ? n : 1);
    owner = nb::capsule(buffer, [](void* p) noexcept { delete static_cast<LargeVector<float>*>(p); });
    return buffer->data();
}

Compatibility make_compat(int kind, float weight, const In<float, 1>& values) {
    std::vector<float> v(values.data(), values.data() + values.size());
    switch (kind) {
        case 0:
            return Compatibility::potts(weight);
        case 1:
            return Compatibility::diagonal(std::move(v));
        case 2:
            return Compatibility::matrix(std::move(v));
        default:
            throw std::invalid_argument("unknown compatibility kind");
    }
}

// One CRF object, locked so that two Python threads cannot run it at the same time.
class Crf {
  public:
    Crf(std::int64_t n_pixels, int n_labels) : crf_(std::make_unique<DenseCRF>(n_pixels, n_labels)) {}
    Crf(int width, int height, int n_labels) {
        auto c = std::make_unique<DenseCRF2D>(width, height, n_labels);
        crf2d_ = c.get();
        crf_ = std::move(c);
    }

    std::int64_t n_pixels() const { return crf_->n_pixels(); }
    int n_labels() const { return crf_->n_labels(); }
    std::size_t n_pairwise() const { return crf_->n_pairwise(); }
    bool set_half_rows(bool on) {
        std::lock_guard<std::mutex> lk(mu_);
        return crf_->set_half_rows(on);
    }

    void set_unary_energy(const In<float, 2>& u) {
        nb::gil_scoped_release nogil;
        std::lock_guard<std::mutex> lk(mu_);
        crf_->set_unary_energy(u.data());
    }
    void set_unary_from_probabilities(const In<float, 2>& p, float clip) {
        nb::gil_scoped_release nogil;
        std::lock_guard<std::mutex> lk(mu_);
        crf_->set_unary_from_probabilities(p.data(), clip);
    }
    void set_unary_from_logits(const In<float, 2>& x) {
        nb::gil_scoped_release nogil;
        std::lock_guard<std::mutex> lk(mu_);
        crf_->set_unary_from_logits(x.data());
    }
    void set_unary_from_labels(const In<std::int32_t, 1>& labels, float gt_prob, bool zero_unsure) {
        nb::gil_scoped_release nogil;
        std::lock_guard<std::mutex> lk(mu_);
        crf_->set_unary_from_labels(labels.data(), gt_prob, zero_unsure);
    }
    void add_pairwise_energy(const In<float, 2>& features, int kind, float weight, const In<float, 1>& values,
                             int kernel, int normalization) {
        const Compatibility c = make_compat(kind, weight, values);
        nb::gil_scoped_release nogil;
        std::lock_guard<std::mutex> lk(mu_);
        crf_->add_pairwise_energy(features.data(), static_cast<int>(features.shape(0)), c, KernelType(kernel),
                                  Normalization(normalization));
    }
    void add_pairwise_gaussian(float sx, float sy, int kind, float weight, const In<float, 1>& values, int kernel,
                               int normalization, bool lattice) {
        const Compatibility c = make_compat(kind, weight, values);
        nb::gil_scoped_release nogil;
        std::lock_guard<std::mutex> lk(mu_);
        need_2d().add_pairwise_gaussian(sx, sy, c, KernelType(kernel), Normalization(normalization),
                                        lattice ? GaussianFilter::Lattice : GaussianFilter::Auto);
    }
    void add_pairwise_bilateral(float sx, float sy, float s0, float s1, float s2, const In<std::uint8_t, 3>& image,
                                int kind, float weight, const In<float, 1>& values, int kernel, int normalization) {
        const Compatibility c = make_compat(kind, weight, values);
        nb::gil_scoped_release nogil;
        std::lock_guard<std::mutex> lk(mu_);
        need_2d().add_pairwise_bilateral(sx, sy, s0, s1, s2, image.data(), c, KernelType(kernel),
                                         Normalization(normalization));
    }

    Out2 inference(int n_iterations) {
        nb::capsule owner;
        float* q = new_buffer(size(), owner);
        {
            nb::gil_scoped_release nogil;
            std::lock_guard<std::mutex> lk(mu_);
            crf_->inference(n_iterations, q);
        }
        return Out2(q, {static_cast<std::size_t>(n_labels()), static_cast<std::size_t>(n_pixels())}, owner);
    }
    Out2 start_inference() {
        nb::capsule owner;
        float* q = new_buffer(size(), owner);
        {
            nb::gil_scoped_release nogil;
            std::lock_guard<std::mutex> lk(mu_);
            crf_->start_inference(q);
        }
        return Out2(q, {static_cast<std::size_t>(n_labels()), static_cast<std::size_t>(n_pixels())}, owner);
    }
    void step_inference(nb::ndarray<float, nb::ndim<2>, nb::c_contig, nb::device::cpu> q) {
        nb::gil_scoped_release nogil;
        std::lock_guard<std::mutex> lk(mu_);
        crf_->step_inference(q.data());
    }
    double kl_divergence(const In<float, 2>& q) {
        nb::gil_scoped_release nogil;
        std::lock_guard<std::mutex> lk(mu_);
        return crf_->kl_divergence(q.data());
    }

  private:
    std::size_t size() const { return static_cast<std::size_t>(n_pixels()) * static_cast<std::size_t>(n_labels()); }
    DenseCRF2D& need_2d() {
        if (!crf2d_) throw std::invalid_argument("this CRF is not 2-D (use DenseCRF2D)");
        return *crf2d_;
    }

    std::unique_ptr<DenseCRF> crf_;
    DenseCRF2D* crf2d_ = nullptr;
    std::mutex mu_;
};

// Refines images[i] (H x W x 3 uint8) with probs[i] (L x H x W float32), one image per thread; inits, empty or one per
// image (L x H x W), are the starting points of mean field (warm start).
// threads: at most this many (0: the process-wide count); cache: the smoothness lattices' cache (None: none).
std::vector<Out3> refine_batch(const std::vector<In<std::uint8_t, 3>>& images, const std::vector<In<float, 3>>& probs,
                               const RefineParams& params, const std::vector<In<float, 3>>& inits, int threads,
                               LatticeCache* cache) {
    if (images.size() != probs.size()) throw std::invalid_argument("images and probs differ in length");
    if (!inits.empty() && inits.size() != probs.size()) throw std::invalid_argument("inits and probs differ in length");
    for (std::size_t i = 0; i < inits.size(); ++i)
        if (inits[i].size() != probs[i].size()) throw std::invalid_argument("an init differs in size from its probs");
    const std::size_t n = images.size();
    std::vector<nb::capsule> owners(n);
    std::vector<float*> outs(n);
    for (std::size_t i = 0; i < n; ++i) outs[i] = new_buffer(probs[i].size(), owners[i]);
    std::vector<std::exception_ptr> errors(n);
    {
        nb::gil_scoped_release nogil;
        ThreadScope scope(threads);
        auto run = [&](std::int64_t i) {
            try {
                RefineOptions options;
                options.init = inits.empty() ? nullptr : inits[i].data();
                options.cache = cache;
                refine(images[i].data(), static_cast<int>(images[i].shape(1)), static_cast<int>(images[i].shape(0)),
                       probs[i].data(), static_cast<int>(probs[i].shape(0)), params, outs[i], options);
            } catch (...) {
                errors[i] = std::current_exception();
            }
        };
        if (n == 1)
            run(0);  // a single image uses every thread inside the CRF
        else
            detail::parallel_tasks(static_cast<std::int64_t>(n), run);
    }
    for (auto& e : errors)
        if (e) std::rethrow_exception(e);
    std::vector<Out3> result;
    for (std::size_t i = 0; i < n; ++i)
        result.emplace_back(outs[i],
                            std::initializer_list<std::size_t>{probs[i].shape(0), probs[i].shape(1), probs[i].shape(2)},
                            owners[i]);
    return result;
}

// One refine() with the time per phase: (result, {phase: seconds, "<term>_lattice": ..., "<term>_vertices": ...}),
// terms named "smoothness" and "bilateral".
nb::tuple profile_refine(const In<std::uint8_t, 3>& image, const In<float, 3>& probs, const RefineParams& params,
                         int threads, LatticeCache* cache) {
    nb::capsule owner;
    float* out = new_buffer(probs.size(), owner);
    Profile profile;
    {
        nb::gil_scoped_release nogil;
        RefineOptions options;
        options.cache = cache;
        options.threads = threads;
        options.profile = &profile;
        refine(image.data(), static_cast<int>(image.shape(1)), static_cast<int>(image.shape(0)), probs.data(),
               static_cast<int>(probs.shape(0)), params, out, options);
    }
    nb::dict phases;
    phases["unary"] = profile.unary;
    phases["splat"] = profile.splat;
    phases["blur"] = profile.blur;
    phases["slice"] = profile.slice;
    const char* names[] = {"smoothness", "bilateral"};
    for (std::size_t t = 0; t < profile.terms.size() && t < 2; ++t) {
        const std::string name = names[t];
        phases[(name + "_lattice").c_str()] = profile.terms[t].lattice;
        phases[(name + "_normalisation").c_str()] = profile.terms[t].normalisation;
        phases[(name + "_vertices").c_str()] = profile.terms[t].vertices;
    }
    Out3 result(out, {probs.shape(0), probs.shape(1), probs.shape(2)}, owner);
    return nb::make_tuple(result, phases);
}

}  // namespace

NB_MODULE(_crf, m) {
    m.doc() = "Fast fully connected CRF (C++ core of the `crf` package)";
    nb::register_exception_translator([](const std::exception_ptr& p, void*) {
        try {
            std::rethrow_exception(p);
        } catch (const OutOfMemory& e) {
            PyErr_SetString(PyExc_MemoryError, e.what());
        }
    });

    nb::class_<Crf>(m, "DenseCRF")
        .def(nb::init<std::int64_t, int>(), nb::arg("n_pixels"), nb::arg("n_labels"))
        .def_static(
            "new_2d", [](int w, int h, int l) { return new Crf(w, h, l); }, nb::arg("width"), nb::arg("height"),
            nb::arg("n_labels"), nb::rv_policy::take_ownership)
        .def_prop_ro("n_pixels", &Crf::n_pixels)
        .def_prop_ro("n_labels", &Crf::n_labels)
        .def_prop_ro("n_pairwise", &Crf::n_pairwise)
        .def("set_unary_energy", &Crf::set_unary_energy)
        .def("set_unary_from_probabilities", &Crf::set_unary_from_probabilities)
        .def("set_unary_from_logits", &Crf::set_unary_from_logits)
        .def("set_unary_from_labels", &Crf::set_unary_from_labels)
        .def("add_pairwise_energy", &Crf::add_pairwise_energy)
        .def("add_pairwise_gaussian", &Crf::add_pairwise_gaussian)
        .def("add_pairwise_bilateral", &Crf::add_pairwise_bilateral)
        .def("inference", &Crf::inference)
        .def("start_inference", &Crf::start_inference)
        .def("step_inference", &Crf::step_inference)
        .def("kl_divergence", &Crf::kl_divergence)
        .def("set_half_rows", &Crf::set_half_rows);

    nb::class_<RefineParams>(m, "RefineParams")
        .def(
            "__init__",
            [](RefineParams* p, int iterations, float gaussian_sxy, float gaussian_weight, float bilateral_sxy,
               float bilateral_srgb, float bilateral_weight, int normalization, float clip, float scale,
               bool half_rows) {
                new (p)
                    RefineParams(params_from(iterations, gaussian_sxy, gaussian_weight, bilateral_sxy, bilateral_srgb,
                                             bilateral_weight, normalization, clip, scale, half_rows));
            },
            nb::arg("iterations"), nb::arg("gaussian_sxy"), nb::arg("gaussian_weight"), nb::arg("bilateral_sxy"),
            nb::arg("bilateral_srgb"), nb::arg("bilateral_weight"), nb::arg("normalization"), nb::arg("clip"),
            nb::arg("scale") = 1.f, nb::arg("half_rows") = true)
        .def_static("voc", &RefineParams::voc)
        .def_static("pydensecrf", &RefineParams::pydensecrf)
        .def_rw("iterations", &RefineParams::iterations)
        .def_rw("gaussian_sxy", &RefineParams::gaussian_sxy)
        .def_rw("gaussian_weight", &RefineParams::gaussian_weight)
        .def_rw("bilateral_sxy", &RefineParams::bilateral_sxy)
        .def_rw("bilateral_srgb", &RefineParams::bilateral_srgb)
        .def_rw("bilateral_weight", &RefineParams::bilateral_weight)
        .def_prop_rw(
            "normalization", [](const RefineParams& p) { return static_cast<int>(p.normalization); },
            [](RefineParams& p, int v) { p.normalization = Normalization(v); })
        .def_rw("clip", &RefineParams::clip)
        .def_rw("scale", &RefineParams::scale)
        .def_rw("half_rows", &RefineParams::half_rows);

    // CRF settings resolved once (crf/settings.hpp): read-only, so a resolved config cannot be patched afterwards.
    nb::class_<CrfConfig>(m, "CrfConfig", "The CRF settings in force (resolve_crf's result); read-only.")
        .def_ro("preset", &CrfConfig::preset)
        .def_ro("overrides", &CrfConfig::overrides)
        .def_ro("iterations", &CrfConfig::iterations)
        .def_ro("scale", &CrfConfig::scale)
        .def_ro("warm_start", &CrfConfig::warm_start)
        .def_ro("device", &CrfConfig::device)
        .def("params", &CrfConfig::params, "The validated RefineParams.");
    m.def(
        "resolve_crf",
        [](const std::string& preset, const CrfOverrides& overrides, int iterations, float scale, bool warm_start,
           const std::string& device, const std::string& model_preset, const CrfOverrides& model_overrides,
           bool video) {
            CrfRequest r;
            r.preset = preset;
            r.overrides = overrides;
            r.iterations = iterations;
            r.scale = scale;
            r.warm_start = warm_start;
            r.device = device;
            return resolve_crf(r, ModelCrf{model_preset, model_overrides}, video);
        },
        nb::arg("preset"), nb::arg("overrides"), nb::arg("iterations"), nb::arg("scale"), nb::arg("warm_start"),
        nb::arg("device"), nb::arg("model_preset"), nb::arg("model_overrides"), nb::arg("video"));
    m.def("preset_names", &preset_names);
    m.def("preset", &preset, nb::arg("name"));
    m.attr("VIDEO_ITERATIONS") = RefineParams::kVideoIterations;
    m.attr("VIDEO_SCALE") = RefineParams::kVideoScale;

    nb::class_<LatticeCache>(m, "LatticeCache",
                             "Smoothness-kernel lattices kept for the next CRFs of the same geometry (least recently "
                             "used dropped first).")
        .def(nb::init<std::size_t>(), nb::arg("capacity") = 1)
        .def_static("process_default", &LatticeCache::process_default, nb::rv_policy::reference,
                    "The cache CRFs use unless given another: one entry, shared by the whole process.")
        .def_prop_ro("capacity", &LatticeCache::capacity)
        .def("__len__", &LatticeCache::size)
        .def_prop_ro("memory_bytes", &LatticeCache::memory_bytes)
        .def("clear", &LatticeCache::clear);

    m.def("refine_batch", &refine_batch, nb::arg("images"), nb::arg("probs"), nb::arg("params"), nb::arg("inits"),
          nb::arg("threads"), nb::arg("cache").none());
    m.def("profile_refine", &profile_refine, nb::arg("image"), nb::arg("probs"), nb::arg("params"), nb::arg("threads"),
          nb::arg("cache").none());
    m.def("set_num_threads", &set_num_threads, nb::arg("n"));
    m.def("get_num_threads", &num_threads);
    m.def("clear_lattice_cache", &clear_lattice_cache, "Empty the process-wide default LatticeCache.");
    m.def("set_buffer_cache_limit", &set_buffer_cache_limit, nb::arg("bytes"),
          "Bytes of freed large CRF buffers kept for reuse by the next CRF (0 releases them).");
}
