// The C API: a thin exception-free shell over deeplab::Segmenter.
#include <cstddef>
#include <cstring>
#include <new>
#include <string>

#include "deeplab/deeplab.h"
#include "deeplab/error.hpp"
#include "deeplab/segmenter.hpp"

struct deeplab_segmenter {
    deeplab::Segmenter segmenter;
};

namespace {

thread_local std::string g_last_error;
thread_local std::string g_provider_error;

deeplab_status fail(deeplab_status status, const std::string& message) {
    try {
        g_last_error = message;
    } catch (...) {
        // keep the previous message: an allocation failure must not escape
    }
    return status;
}

/// Run f, turning every exception into a status and a last-error message.
template <class F>
deeplab_status guarded(F&& f) {
    try {
        f();
        return DEEPLAB_OK;
    } catch (const deeplab::Error& e) {
        return fail(static_cast<deeplab_status>(e.code()), e.what());
    } catch (const std::bad_alloc&) {
        return fail(DEEPLAB_ERROR_OUT_OF_MEMORY, "out of memory");
    } catch (const std::exception& e) {
        return fail(DEEPLAB_ERROR_INTERNAL, std::string("internal error: ") + e.what());
    } catch (...) {
        return fail(DEEPLAB_ERROR_INTERNAL, "internal error: unknown exception");
    }
}

class CallbackProvider final : public deeplab::LogitsProvider {
  public:
    CallbackProvider(deeplab_logits_fn fn, void* user) : fn_(fn), user_(user) {}
    deeplab::LogitsView infer(const float* input, int height, int width) override {
        deeplab_logits out{nullptr, 0, 0, 0};
        g_provider_error.clear();
        const int rc = fn_(user_, input, height, width, &out);
        if (rc != 0)
            throw deeplab::Error(deeplab::ErrorCode::provider,
                                 g_provider_error.empty()
                                     ? "the logits provider failed (returned " + std::to_string(rc) + ")"
                                     : "the logits provider failed: " + g_provider_error);
        return {out.data, out.channels, out.height, out.width};
    }

  private:
    deeplab_logits_fn fn_;
    void* user_;
};

deeplab::SegmenterOptions to_options(const deeplab_options* o) {
    deeplab_options d;
    deeplab_options_init(&d);
    if (o != nullptr) {
        if (o->struct_size < sizeof(uint32_t) || o->struct_size > sizeof(deeplab_options))
            throw deeplab::Error(deeplab::ErrorCode::invalid_argument,
                                 "options->struct_size is " + std::to_string(o->struct_size) +
                                     ": initialize options with deeplab_options_init");
        std::memcpy(&d, o, o->struct_size);  // a caller built against an older, shorter struct keeps the new defaults
    }
    deeplab::SegmenterOptions s;
    s.crf = d.crf != 0;
    s.crf_iterations = d.crf_iterations;
    if (d.crf_preset != nullptr) s.crf_preset = d.crf_preset;
    s.threads = d.threads;
    s.warm_start = d.warm_start != 0;
    s.crf_scale = d.crf_scale;
    s.video = d.video != 0;
    return s;
}

int device_of(const deeplab_options* o) {
    return o != nullptr && o->struct_size >= offsetof(deeplab_options, device) + sizeof(int32_t) ? o->device : 0;
}

deeplab_status null_arg(const char* name) {
    return fail(DEEPLAB_ERROR_INVALID_ARGUMENT, std::string(name) + " is NULL");
}

}  // namespace

extern "C" {

void deeplab_options_init(deeplab_options* options) {
    if (options == nullptr) return;
    options->struct_size = sizeof(deeplab_options);
    options->crf = 1;
    options->crf_iterations = -1;
    options->threads = 0;
    options->warm_start = 0;
    options->device = 0;
    options->crf_preset = nullptr;
    options->crf_scale = 0.f;
    options->video = 0;
}

deeplab_status deeplab_create_from_engine(const char* engine_path, const deeplab_options* options,
                                          deeplab_segmenter** out) {
    if (out == nullptr) return null_arg("out");
    *out = nullptr;
    if (engine_path == nullptr) return null_arg("engine_path");
    return guarded([&] {
        auto s = deeplab::Segmenter::from_engine(engine_path, to_options(options), device_of(options));
        *out = new deeplab_segmenter{std::move(s)};
    });
}

deeplab_status deeplab_create_from_provider(const char* meta_json, deeplab_logits_fn provider, void* user_data,
                                            const deeplab_options* options, deeplab_segmenter** out) {
    if (out == nullptr) return null_arg("out");
    *out = nullptr;
    if (meta_json == nullptr) return null_arg("meta_json");
    if (provider == nullptr) return null_arg("provider");
    return guarded([&] {
        deeplab::Segmenter s(deeplab::ModelMeta::from_json(meta_json),
                             std::make_unique<CallbackProvider>(provider, user_data), to_options(options));
        *out = new deeplab_segmenter{std::move(s)};
    });
}

deeplab_status deeplab_apply(deeplab_segmenter* segmenter, const uint8_t* bgr, int32_t height, int32_t width,
                             size_t row_stride, uint8_t* labels, size_t labels_size, float* probs, size_t probs_size) {
    if (segmenter == nullptr) return null_arg("segmenter");
    if (bgr == nullptr) return null_arg("bgr");
    if (labels == nullptr) return null_arg("labels");
    if (height <= 0 || width <= 0)
        return fail(DEEPLAB_ERROR_INVALID_ARGUMENT,
                    "image is empty (" + std::to_string(height) + "×" + std::to_string(width) + ")");
    const size_t pixels = static_cast<size_t>(height) * static_cast<size_t>(width);
    if (labels_size != pixels)
        return fail(DEEPLAB_ERROR_INVALID_ARGUMENT, "labels_size is " + std::to_string(labels_size) +
                                                        ", expected height*width = " + std::to_string(pixels));
    const size_t n_probs = pixels * static_cast<size_t>(segmenter->segmenter.meta().n_classes());
    if (probs != nullptr && probs_size != n_probs)
        return fail(DEEPLAB_ERROR_INVALID_ARGUMENT,
                    "probs_size is " + std::to_string(probs_size) +
                        ", expected n_classes*height*width = " + std::to_string(n_probs));
    return guarded(
        [&] { segmenter->segmenter.segment(deeplab::ImageView{bgr, height, width, row_stride}, labels, probs); });
}

deeplab_status deeplab_reset(deeplab_segmenter* segmenter) {
    if (segmenter == nullptr) return null_arg("segmenter");
    return guarded([&] { segmenter->segmenter.reset(); });
}

int32_t deeplab_num_classes(const deeplab_segmenter* segmenter) {
    return segmenter == nullptr ? -1 : segmenter->segmenter.meta().n_classes();
}

const char* deeplab_class_name(const deeplab_segmenter* segmenter, int32_t index) {
    if (segmenter == nullptr || index < 0 || index >= segmenter->segmenter.meta().n_classes()) return nullptr;
    return segmenter->segmenter.meta().class_names[static_cast<size_t>(index)].c_str();
}

deeplab_status deeplab_get_timings(const deeplab_segmenter* segmenter, deeplab_timings* out) {
    if (segmenter == nullptr) return null_arg("segmenter");
    if (out == nullptr) return null_arg("out");
    const deeplab::StageTimes& t = segmenter->segmenter.last_times();
    *out = deeplab_timings{t.preprocess_ms, t.infer_ms, t.upsample_ms, t.crf_ms, t.total_ms};
    return DEEPLAB_OK;
}

void deeplab_destroy(deeplab_segmenter* segmenter) {
    delete segmenter;
}

const char* deeplab_last_error(void) {
    return g_last_error.c_str();
}

void deeplab_set_provider_error(const char* message) {
    try {
        g_provider_error = message != nullptr ? message : "";
    } catch (...) {
    }
}

const char* deeplab_status_string(deeplab_status status) {
    switch (status) {
        case DEEPLAB_OK:
            return "DEEPLAB_OK";
        case DEEPLAB_ERROR_INVALID_ARGUMENT:
            return "DEEPLAB_ERROR_INVALID_ARGUMENT";
        case DEEPLAB_ERROR_METADATA:
            return "DEEPLAB_ERROR_METADATA";
        case DEEPLAB_ERROR_ENGINE:
            return "DEEPLAB_ERROR_ENGINE";
        case DEEPLAB_ERROR_PROVIDER:
            return "DEEPLAB_ERROR_PROVIDER";
        case DEEPLAB_ERROR_UNSUPPORTED:
            return "DEEPLAB_ERROR_UNSUPPORTED";
        case DEEPLAB_ERROR_IO:
            return "DEEPLAB_ERROR_IO";
        case DEEPLAB_ERROR_OUT_OF_MEMORY:
            return "DEEPLAB_ERROR_OUT_OF_MEMORY";
        case DEEPLAB_ERROR_INTERNAL:
            return "DEEPLAB_ERROR_INTERNAL";
    }
    return "DEEPLAB_ERROR_UNKNOWN";
}

const char* deeplab_version(void) {
    return DEEPLAB_VERSION_STRING;
}

const char* deeplab_build_features(void) {
    return DEEPLAB_BUILD_FEATURES;
}

}  // extern "C"
