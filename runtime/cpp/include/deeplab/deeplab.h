/* deeplab.h: the C API of the DeepLab v2 runtime (preprocess -> network logits -> bilinear upsample + softmax ->
 * dense CRF -> labels), for services in C and for other languages through a C ABI.
 *
 * Conventions
 * - Every function that can fail returns a deeplab_status; DEEPLAB_OK (0) is success. On failure,
 *   deeplab_last_error() returns a one-line message describing the most recent failure on the calling thread
 *   (thread-local; valid until the next failing call on that thread). No C++ exception ever crosses this API.
 * - A deeplab_segmenter is an opaque handle. One handle must not be used by two threads at once: create one per
 *   thread (they are independent), or serialize calls to a shared one.
 * - Images are 8-bit BGR (OpenCV's layout): height rows of width*3 bytes, rows row_stride bytes apart (0: packed,
 *   width*3).
 * - Output buffers belong to the caller: labels is height*width bytes (row-major, one class index per pixel),
 *   probs (optional, may be NULL) is n_classes*height*width floats (class-major: probs[c*height*width + y*width + x]).
 * - Preprocessing is the Python runtime's (runtime/preprocess.py): channel order, mean and scale from the model's
 *   metadata, zero padding to a multiple of the output stride; outputs are cropped back to the image size.
 */
#ifndef DEEPLAB_DEEPLAB_H
#define DEEPLAB_DEEPLAB_H

#include <stddef.h>
#include <stdint.h>

#if defined(_WIN32)
#define DEEPLAB_API __declspec(dllexport)
#else
#define DEEPLAB_API __attribute__((visibility("default")))
#endif

#ifdef __cplusplus
extern "C" {
#endif

typedef enum deeplab_status {
    DEEPLAB_OK = 0,
    DEEPLAB_ERROR_INVALID_ARGUMENT = 1, /* a NULL pointer, a wrong size, a bad option */
    DEEPLAB_ERROR_METADATA = 2,         /* missing, corrupt or inconsistent model metadata / engine sidecar */
    DEEPLAB_ERROR_ENGINE = 3,           /* the engine cannot be loaded or run (corrupt, other TensorRT or GPU) */
    DEEPLAB_ERROR_PROVIDER = 4,         /* the logits provider callback failed or returned unusable logits */
    DEEPLAB_ERROR_UNSUPPORTED = 5,      /* this build lacks the feature (e.g. TensorRT) */
    DEEPLAB_ERROR_IO = 6,               /* a file cannot be read */
    DEEPLAB_ERROR_OUT_OF_MEMORY = 7,
    DEEPLAB_ERROR_INTERNAL = 8
} deeplab_status;

typedef struct deeplab_segmenter deeplab_segmenter;

/* Logits returned by a provider: channels x height x width float32, row-major. The memory belongs to the provider
 * and must stay valid until the provider's next call or until the segmenter is destroyed. */
typedef struct deeplab_logits {
    const float* data;
    int32_t channels;
    int32_t height;
    int32_t width;
} deeplab_logits;

/* A logits provider runs the network: it receives the preprocessed input (1 x 3 x height x width float32, NCHW,
 * height and width multiples of the output stride) and fills *out. Return 0 on success, anything else on failure
 * (the segmenter then fails with DEEPLAB_ERROR_PROVIDER; the message may be set with deeplab_set_provider_error). */
typedef int (*deeplab_logits_fn)(void* user_data, const float* input, int32_t height, int32_t width,
                                 deeplab_logits* out);

typedef struct deeplab_options {
    uint32_t struct_size;   /* sizeof(deeplab_options): set by deeplab_options_init */
    int32_t crf;            /* 1: refine with the dense CRF (default); 0: labels from the upsampled logits */
    int32_t crf_iterations; /* mean-field iterations; -1 (default): the preset's */
    int32_t threads;        /* CPU threads for upsampling and the CRF; 0 = all cores (default). Process-wide in
                               those libraries: give every segmenter of a process the same value. */
    int32_t warm_start;     /* 1: the CRF starts from the previous frame's result (video); default 0 */
    int32_t device;         /* CUDA device for engines (default 0) */
    const char* crf_preset; /* NULL or "default" (default): the model's own CRF settings (metadata extra.crf) if any,
                               else "voc" (DeepLab v2: 10 iterations, w=3 sxy=1; w=4 sxy=67 srgb=3); or "voc",
                               "pydensecrf" (pydensecrf's example settings). Copied at creation. */
    float crf_scale;        /* CRF resolution in (0, 1]; 0 (default): the preset's */
    int32_t video;          /* 1: the frames are one video's: unless crf_iterations, crf_scale or warm_start are
                               given, the cheaper video CRF (fewer iterations at a reduced resolution); default 0 */
} deeplab_options;

/* Per-stage wall time of the last successful deeplab_apply, in milliseconds. */
typedef struct deeplab_timings {
    double preprocess_ms;
    double infer_ms;
    double upsample_ms;
    double crf_ms;
    double total_ms;
} deeplab_timings;

/* Fill *options with the defaults. */
DEEPLAB_API void deeplab_options_init(deeplab_options* options);

/* Load a TensorRT engine and its sidecar metadata (<engine_path>.json); the sidecar is checked against the running
 * TensorRT and GPU first, and a mismatch names what differs and the command that rebuilds the engine.
 * options may be NULL (defaults). On failure *out is set to NULL. */
DEEPLAB_API deeplab_status deeplab_create_from_engine(const char* engine_path, const deeplab_options* options,
                                                      deeplab_segmenter** out);

/* Create a segmenter whose network is a callback. meta_json is the model metadata (runtime.metadata.ModelMeta
 * to_json(): class names, mean, scale, output stride, ...). options may be NULL. On failure *out is set to NULL. */
DEEPLAB_API deeplab_status deeplab_create_from_provider(const char* meta_json, deeplab_logits_fn provider,
                                                        void* user_data, const deeplab_options* options,
                                                        deeplab_segmenter** out);

/* Segment one image. labels_size and probs_size are the buffers' element counts (height*width and
 * n_classes*height*width); probs may be NULL (probs_size is then ignored). */
DEEPLAB_API deeplab_status deeplab_apply(deeplab_segmenter* segmenter, const uint8_t* bgr, int32_t height,
                                         int32_t width, size_t row_stride, uint8_t* labels, size_t labels_size,
                                         float* probs, size_t probs_size);

/* Forget the previous frame (warm start): call between unrelated streams. */
DEEPLAB_API deeplab_status deeplab_reset(deeplab_segmenter* segmenter);

/* The number of classes, or -1 for a NULL handle. */
DEEPLAB_API int32_t deeplab_num_classes(const deeplab_segmenter* segmenter);

/* The name of class index (owned by the segmenter), or NULL when out of range. */
DEEPLAB_API const char* deeplab_class_name(const deeplab_segmenter* segmenter, int32_t index);

/* Per-stage times of the last successful apply. */
DEEPLAB_API deeplab_status deeplab_get_timings(const deeplab_segmenter* segmenter, deeplab_timings* out);

/* Destroy a segmenter; NULL is a no-op. */
DEEPLAB_API void deeplab_destroy(deeplab_segmenter* segmenter);

/* The message of the last failure on this thread ("" when none). Never NULL. */
DEEPLAB_API const char* deeplab_last_error(void);

/* For providers: the message the segmenter reports when the provider returns non-zero (copied; thread-local). */
DEEPLAB_API void deeplab_set_provider_error(const char* message);

/* A constant name for a status ("DEEPLAB_ERROR_METADATA", ...). */
DEEPLAB_API const char* deeplab_status_string(deeplab_status status);

/* The library version ("0.1.0") and its build features ("crf", "cuda", "tensorrt" separated by spaces). */
DEEPLAB_API const char* deeplab_version(void);
DEEPLAB_API const char* deeplab_build_features(void);

#ifdef __cplusplus
}
#endif

#endif /* DEEPLAB_DEEPLAB_H */
