/* The C API from C: every error path returns a status and a message; a provider-backed segmenter runs end to end.
 * Usage: test_c_api WORK_DIR (a writable folder for the engine files it makes). */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deeplab/deeplab.h"

static int failures = 0;

#define CHECK(cond)                                                                  \
    do {                                                                             \
        if (!(cond)) {                                                               \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
            ++failures;                                                              \
        }                                                                            \
    } while (0)

/* status == expected and the last error contains `needle` */
#define CHECK_ERROR(call, expected, needle)                                                                       \
    do {                                                                                                          \
        deeplab_status st_ = (call);                                                                              \
        if (st_ != (expected) || strstr(deeplab_last_error(), (needle)) == NULL) {                                \
            fprintf(stderr, "%s:%d: %s returned %s \"%s\", expected %s with \"%s\"\n", __FILE__, __LINE__, #call, \
                    deeplab_status_string(st_), deeplab_last_error(), deeplab_status_string(expected), (needle)); \
            ++failures;                                                                                           \
        }                                                                                                         \
    } while (0)

static const char* kMeta =
    "{\"class_names\": [\"background\", \"car\", \"person\"], \"channel_order\": \"BGR\", "
    "\"mean\": [104.008, 116.669, 122.675], \"scale\": [1.0, 1.0, 1.0], \"output_stride\": 8, "
    "\"align_corners\": false, \"input_name\": \"image\", \"output_name\": \"logits\", \"precision\": \"fp32\", "
    "\"msc\": false, \"source_sha256\": \"\", \"extra\": {}, \"schema_version\": 1}";

static const char* kMetaCrf =
    "{\"class_names\": [\"background\", \"car\", \"person\"], \"extra\": {\"crf\": {\"preset\": \"pydensecrf\", "
    "\"iterations\": 3, \"bilateral_srgb\": 5}}}";

/* A provider whose logits favour class `favour` everywhere; mode selects a failure. */
typedef struct {
    int favour;
    int mode; /* 0 ok, 1 fail with message, 2 fail silently, 3 wrong channels, 4 NULL data,
                 5 logits one row and column short, 6 logits of an input twice as large */
    int calls;
    int last_h, last_w;
    float logits[3 * 64 * 64];
} Provider;

static int provide(void* user, const float* input, int32_t h, int32_t w, deeplab_logits* out) {
    Provider* p = (Provider*)user;
    int scale = p->mode == 6 ? 2 : 1;
    /* DeepLab's ceil-mode pooling gives one more row and column than H/8 × W/8 */
    int lh = scale * h / 8 + (p->mode == 5 ? 0 : 1), lw = scale * w / 8 + (p->mode == 5 ? 0 : 1);
    int i;
    (void)input;
    p->calls++;
    p->last_h = h;
    p->last_w = w;
    if (p->mode == 1) {
        deeplab_set_provider_error("GPU on fire");
        return 7;
    }
    if (p->mode == 2) return -1;
    for (i = 0; i < 3 * lh * lw; ++i) p->logits[i] = (i / (lh * lw) == p->favour) ? 2.0f : 0.0f;
    out->data = p->mode == 4 ? NULL : p->logits;
    out->channels = p->mode == 3 ? 2 : 3;
    out->height = lh;
    out->width = lw;
    return 0;
}

static void* fail_in_other_thread(void* arg) {
    deeplab_segmenter* s = NULL;
    (void)arg;
    deeplab_create_from_provider("not json", provide, NULL, NULL, &s);
    return NULL;
}

static void write_file(const char* path, const char* text) {
    FILE* f = fopen(path, "wb");
    if (!f) {
        perror(path);
        exit(2);
    }
    fputs(text, f);
    fclose(f);
}

static void test_create_errors(void) {
    deeplab_segmenter* s = (deeplab_segmenter*)&s; /* must be reset to NULL on failure */
    Provider p = {1, 0, 0, 0, 0, {0}};
    deeplab_options o;
    CHECK_ERROR(deeplab_create_from_provider(kMeta, provide, &p, NULL, NULL), DEEPLAB_ERROR_INVALID_ARGUMENT,
                "out is NULL");
    CHECK_ERROR(deeplab_create_from_provider(NULL, provide, &p, NULL, &s), DEEPLAB_ERROR_INVALID_ARGUMENT,
                "meta_json is NULL");
    CHECK(s == NULL);
    CHECK_ERROR(deeplab_create_from_provider(kMeta, NULL, &p, NULL, &s), DEEPLAB_ERROR_INVALID_ARGUMENT,
                "provider is NULL");
    CHECK_ERROR(deeplab_create_from_provider("{\"class_names\": [", provide, &p, NULL, &s), DEEPLAB_ERROR_METADATA,
                "model metadata is not valid JSON");
    CHECK_ERROR(deeplab_create_from_provider("[1, 2]", provide, &p, NULL, &s), DEEPLAB_ERROR_METADATA,
                "model metadata must be a JSON object");
    CHECK_ERROR(deeplab_create_from_provider("{\"mean\": [1, 2, 3]}", provide, &p, NULL, &s), DEEPLAB_ERROR_METADATA,
                "model metadata lacks class_names");
    CHECK_ERROR(deeplab_create_from_provider("{\"class_names\": [\"a\"], \"colour\": 1}", provide, &p, NULL, &s),
                DEEPLAB_ERROR_METADATA, "model metadata has unknown fields: colour");
    CHECK_ERROR(
        deeplab_create_from_provider("{\"class_names\": [\"a\"], \"channel_order\": \"BGX\"}", provide, &p, NULL, &s),
        DEEPLAB_ERROR_METADATA, "channel_order must be a permutation of 'BGR', got 'BGX'");
    CHECK_ERROR(deeplab_create_from_provider("{\"class_names\": []}", provide, &p, NULL, &s), DEEPLAB_ERROR_METADATA,
                "model metadata lists no classes");
    deeplab_options_init(&o);
    o.struct_size = 0;
    CHECK_ERROR(deeplab_create_from_provider(kMeta, provide, &p, &o, &s), DEEPLAB_ERROR_INVALID_ARGUMENT,
                "struct_size");
    deeplab_options_init(&o);
    o.crf_iterations = -2;
    CHECK_ERROR(deeplab_create_from_provider(kMeta, provide, &p, &o, &s), DEEPLAB_ERROR_INVALID_ARGUMENT,
                "crf iterations must be >= 0");
    deeplab_options_init(&o);
    o.crf_preset = "cityscapes";
    CHECK_ERROR(deeplab_create_from_provider(kMeta, provide, &p, &o, &s), DEEPLAB_ERROR_INVALID_ARGUMENT,
                "unknown CRF preset 'cityscapes'; known: pydensecrf, voc");
    CHECK_ERROR(deeplab_create_from_provider("{\"class_names\": [\"a\"], \"extra\": {\"crf\": {\"sigma\": 2}}}",
                                             provide, &p, NULL, &s),
                DEEPLAB_ERROR_INVALID_ARGUMENT, "unknown CRF setting 'sigma'");
    CHECK(s == NULL);
    CHECK(p.calls == 0);
}

static void test_apply(void) {
    enum { H = 21, W = 30 };
    static unsigned char image[H * (W * 3 + 5)];
    unsigned char labels[H * W];
    float probs[3 * H * W];
    Provider p = {2, 0, 0, 0, 0, {0}};
    deeplab_segmenter* s = NULL;
    deeplab_options o;
    deeplab_timings t;
    const size_t stride = W * 3 + 5;
    int i, all_two = 1, sums_ok = 1;

    deeplab_options_init(&o);
    o.crf = 0;
    CHECK(deeplab_create_from_provider(kMeta, provide, &p, &o, &s) == DEEPLAB_OK);
    if (!s) return;
    CHECK(deeplab_num_classes(s) == 3);
    CHECK(deeplab_num_classes(NULL) == -1);
    CHECK(strcmp(deeplab_class_name(s, 1), "car") == 0);
    CHECK(deeplab_class_name(s, 3) == NULL && deeplab_class_name(s, -1) == NULL);
    for (i = 0; i < (int)sizeof image; ++i) image[i] = (unsigned char)(i * 7);

    CHECK_ERROR(deeplab_apply(NULL, image, H, W, stride, labels, H * W, NULL, 0), DEEPLAB_ERROR_INVALID_ARGUMENT,
                "segmenter is NULL");
    CHECK_ERROR(deeplab_apply(s, NULL, H, W, stride, labels, H * W, NULL, 0), DEEPLAB_ERROR_INVALID_ARGUMENT,
                "bgr is NULL");
    CHECK_ERROR(deeplab_apply(s, image, H, W, stride, NULL, H * W, NULL, 0), DEEPLAB_ERROR_INVALID_ARGUMENT,
                "labels is NULL");
    CHECK_ERROR(deeplab_apply(s, image, 0, W, stride, labels, 0, NULL, 0), DEEPLAB_ERROR_INVALID_ARGUMENT,
                "image is empty");
    CHECK_ERROR(deeplab_apply(s, image, H, W, stride, labels, H * W - 1, NULL, 0), DEEPLAB_ERROR_INVALID_ARGUMENT,
                "labels_size is 629, expected height*width = 630");
    CHECK_ERROR(deeplab_apply(s, image, H, W, stride, labels, H * W, probs, H * W), DEEPLAB_ERROR_INVALID_ARGUMENT,
                "probs_size is 630, expected n_classes*height*width = 1890");
    CHECK_ERROR(deeplab_apply(s, image, H, W, W * 3 - 1, labels, H * W, NULL, 0), DEEPLAB_ERROR_INVALID_ARGUMENT,
                "row stride 89 is smaller than width*3 = 90");
    CHECK(p.calls == 0);

    CHECK(deeplab_apply(s, image, H, W, stride, labels, H * W, probs, 3 * H * W) == DEEPLAB_OK);
    CHECK(p.last_h == 24 && p.last_w == 32); /* padded to multiples of the stride */
    for (i = 0; i < H * W; ++i) {
        if (labels[i] != 2) all_two = 0;
        if (fabsf(probs[i] + probs[H * W + i] + probs[2 * H * W + i] - 1.0f) > 1e-5f) sums_ok = 0;
    }
    CHECK(all_two);
    CHECK(sums_ok);
    CHECK(deeplab_get_timings(s, &t) == DEEPLAB_OK && t.total_ms >= 0 && t.total_ms >= t.infer_ms);
    CHECK_ERROR(deeplab_get_timings(s, NULL), DEEPLAB_ERROR_INVALID_ARGUMENT, "out is NULL");
    CHECK(deeplab_apply(s, image, H, W, 0, labels, H * W, NULL, 0) == DEEPLAB_OK); /* packed rows, no probs */

    p.mode = 1;
    CHECK_ERROR(deeplab_apply(s, image, H, W, stride, labels, H * W, NULL, 0), DEEPLAB_ERROR_PROVIDER, "GPU on fire");
    p.mode = 2;
    CHECK_ERROR(deeplab_apply(s, image, H, W, stride, labels, H * W, NULL, 0), DEEPLAB_ERROR_PROVIDER, "returned -1");
    p.mode = 3;
    CHECK_ERROR(deeplab_apply(s, image, H, W, stride, labels, H * W, NULL, 0), DEEPLAB_ERROR_PROVIDER,
                "the logits have 2 channels but the model has 3 classes");
    p.mode = 4;
    CHECK_ERROR(deeplab_apply(s, image, H, W, stride, labels, H * W, NULL, 0), DEEPLAB_ERROR_PROVIDER, "no data");
    p.mode = 5;
    CHECK_ERROR(deeplab_apply(s, image, H, W, stride, labels, H * W, NULL, 0), DEEPLAB_ERROR_PROVIDER,
                "the logits are 3×4 but the model gives 4×5 for a 24×32 input");
    p.mode = 6; /* smaller than the input, but not what the model gives for it */
    CHECK_ERROR(deeplab_apply(s, image, H, W, stride, labels, H * W, probs, 3 * H * W), DEEPLAB_ERROR_PROVIDER,
                "the logits are 7×9 but the model gives 4×5 for a 24×32 input");
    p.mode = 0;
    CHECK(deeplab_apply(s, image, H, W, stride, labels, H * W, NULL, 0) == DEEPLAB_OK);
    CHECK(deeplab_reset(s) == DEEPLAB_OK);
    CHECK_ERROR(deeplab_reset(NULL), DEEPLAB_ERROR_INVALID_ARGUMENT, "segmenter is NULL");
    deeplab_destroy(s);
    deeplab_destroy(NULL);

    /* with the CRF (the model's preset from its metadata), warm-started on the second frame */
    s = NULL;
    deeplab_options_init(&o);
    o.warm_start = 1;
    o.threads = 1;
    CHECK(deeplab_create_from_provider(kMetaCrf, provide, &p, &o, &s) == DEEPLAB_OK);
    if (!s) return;
    for (i = 0; i < 2; ++i) {
        int j;
        CHECK(deeplab_apply(s, image, H, W, stride, labels, H * W, probs, 3 * H * W) == DEEPLAB_OK);
        for (j = 0; j < H * W; ++j) all_two &= labels[j] == 2;
        CHECK(all_two);
    }
    CHECK(deeplab_get_timings(s, &t) == DEEPLAB_OK && t.crf_ms > 0);
    deeplab_destroy(s);
}

static void test_engine_errors(const char* dir) {
    char engine[4096], sidecar[4200];
    deeplab_segmenter* s = NULL;
    const int have_trt = strstr(deeplab_build_features(), "tensorrt") != NULL;
    snprintf(engine, sizeof engine, "%s/corrupt.plan", dir);
    snprintf(sidecar, sizeof sidecar, "%s.json", engine);
    remove(engine);
    remove(sidecar);

    CHECK_ERROR(deeplab_create_from_engine(NULL, NULL, &s), DEEPLAB_ERROR_INVALID_ARGUMENT, "engine_path is NULL");
    CHECK_ERROR(deeplab_create_from_engine(engine, NULL, &s), DEEPLAB_ERROR_IO, "cannot read engine");
    write_file(engine, "this is not a TensorRT plan");
    CHECK_ERROR(deeplab_create_from_engine(engine, NULL, &s), DEEPLAB_ERROR_METADATA,
                "has no metadata sidecar (corrupt.plan.json)");
    write_file(sidecar, "{\"meta\": {\"class_names\": [\"a\"]}, \"engine\": ");
    CHECK_ERROR(deeplab_create_from_engine(engine, NULL, &s), DEEPLAB_ERROR_METADATA, "is not valid JSON");
    write_file(sidecar, "{\"meta\": {\"class_names\": [\"a\"]}}");
    CHECK_ERROR(deeplab_create_from_engine(engine, NULL, &s), DEEPLAB_ERROR_METADATA,
                "must hold 'meta' and 'engine' objects");
    write_file(sidecar, "{\"meta\": {\"class_names\": [\"a\"]}, \"engine\": {\"tensorrt_version\": \"10.3.0\"}}");
    CHECK_ERROR(deeplab_create_from_engine(engine, NULL, &s), DEEPLAB_ERROR_METADATA,
                "engine sidecar lacks gpu_name, compute_capability, precision, profile");
    write_file(sidecar, "{\"meta\": {\"class_names\": [\"a\"], \"precision\": \"fp8\"}, \"engine\": {}}");
    CHECK_ERROR(deeplab_create_from_engine(engine, NULL, &s), DEEPLAB_ERROR_METADATA,
                "precision must be fp32, fp16 or int8, got 'fp8'");
    write_file(sidecar,
               "{\"meta\": {\"class_names\": [\"a\", \"b\"]}, \"engine\": {\"tensorrt_version\": \"10.3.0\", "
               "\"gpu_name\": \"Orin\", \"compute_capability\": \"8.7\", \"precision\": \"fp16\", \"profile\": "
               "{\"min\": [1, 3, 64, 64], \"opt\": [1, 3, 512, 512], \"max\": [1, 3, 1024, 1024]}}}");
    if (have_trt) {
        /* a sidecar from another machine, or (if it matches) a plan TensorRT cannot deserialize */
        CHECK_ERROR(deeplab_create_from_engine(engine, NULL, &s), DEEPLAB_ERROR_ENGINE, "engine");
    } else {
        CHECK_ERROR(deeplab_create_from_engine(engine, NULL, &s), DEEPLAB_ERROR_UNSUPPORTED, "has no TensorRT");
    }
    CHECK(s == NULL);
    remove(engine);
    remove(sidecar);
}

static void test_thread_local_error(void) {
    pthread_t t;
    deeplab_segmenter* s = NULL;
    CHECK_ERROR(deeplab_create_from_provider(kMeta, NULL, NULL, NULL, &s), DEEPLAB_ERROR_INVALID_ARGUMENT,
                "provider is NULL");
    CHECK(pthread_create(&t, NULL, fail_in_other_thread, NULL) == 0);
    pthread_join(t, NULL);
    CHECK(strstr(deeplab_last_error(), "provider is NULL") != NULL);
}

int main(int argc, char** argv) {
    CHECK(strcmp(deeplab_status_string(DEEPLAB_ERROR_METADATA), "DEEPLAB_ERROR_METADATA") == 0);
    CHECK(deeplab_version() != NULL && deeplab_build_features() != NULL);
    CHECK(deeplab_last_error() != NULL);
    test_create_errors();
    test_apply();
    test_engine_errors(argc > 1 ? argv[1] : ".");
    test_thread_local_error();
    if (failures)
        fprintf(stderr, "%d check(s) failed\n", failures);
    else
        printf("all C API checks passed (features: %s)\n", deeplab_build_features());
    return failures ? 1 : 0;
}
