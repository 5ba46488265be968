// Units of the C++ runtime: model metadata and preprocessing (the cases of tests/data/model_meta_cases.json and
// preprocess_cases.json, which the Python runtime's tests read too), engine sidecars, npy round trips.
#include <cmath>
#include <cstdio>
#include <fstream>
#include <optional>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "check.hpp"
#include "deeplab/engine_info.hpp"
#include "deeplab/model_meta.hpp"
#include "deeplab/npy.hpp"
#include "deeplab/preprocess.hpp"

using deeplab::ErrorCode;

static nlohmann::json read_cases(const std::string& path);

static void test_meta(const std::string& cases_path) {
    using deeplab::ModelMeta;
    const auto cases = read_cases(cases_path);
    CHECK(cases.size() > 20);
    for (const auto& c : cases) {
        const std::string json = c.at("json").get<std::string>();
        if (c.at("error").is_null()) {
            try {
                (void)ModelMeta::from_json(json);
            } catch (const deeplab::Error& e) {
                std::fprintf(stderr, "%s: unexpected error \"%s\"\n", json.c_str(), e.what());
                ++g_failures;
            }
            continue;
        }
        const std::string error = c.at("error").get<std::string>();
        try {
            (void)ModelMeta::from_json(json);
            std::fprintf(stderr, "%s: no error, expected \"%s\"\n", json.c_str(), error.c_str());
            ++g_failures;
        } catch (const deeplab::Error& e) {
            if (e.code() != ErrorCode::metadata || std::string(e.what()).rfind(error, 0) != 0) {
                std::fprintf(stderr, "%s: \"%s\", expected \"%s\"\n", json.c_str(), e.what(), error.c_str());
                ++g_failures;
            }
        }
    }
    const ModelMeta m = ModelMeta::from_json(
        R"({"class_names": ["bg", "a"], "channel_order": "RGB", "mean": [1, 2, 3], "scale": [0.5, 0.25, 2],
          "output_stride": 16, "align_corners": true, "msc": true, "precision": "int8", "input_name": "x",
          "output_name": "y", "source_sha256": "ab", "extra": {"crf": {"preset": "pydensecrf", "half_rows": false}},
          "schema_version": 1})");
    CHECK(m.n_classes() == 2 && m.class_names[1] == "a" && m.channel_order == "RGB");
    CHECK(m.mean[2] == 3.0f && m.scale[1] == 0.25f && m.output_stride == 16 && m.align_corners && m.msc);
    CHECK(m.precision == "int8" && m.input_name == "x" && m.output_name == "y" && m.source_sha256 == "ab");
    CHECK(m.crf_preset == "pydensecrf" && m.crf_overrides.at("half_rows") == 0);
    const ModelMeta d = ModelMeta::from_json(R"({"class_names": ["bg"]})");
    CHECK(d.channel_order == "BGR" && d.mean[0] == 104.008f && d.output_stride == 8 && !d.align_corners);
}

static deeplab::EngineInfo orin_info() {
    deeplab::EngineInfo i;
    i.tensorrt_version = "10.3.0";
    i.gpu_name = "Orin";
    i.compute_capability = "8.7";
    i.precision = "fp16";
    i.profile = {{{1, 3, 64, 64}, {1, 3, 512, 512}, {1, 3, 1024, 1024}}};
    i.onnx_path = "demo model.onnx";
    return i;
}

static void test_engine_info() {
    using namespace deeplab;
    CHECK(tensorrt_version_string(8601) == "8.6.1" && tensorrt_version_string(8502) == "8.5.2");
    CHECK(tensorrt_version_string(100300) == "10.3.0" && tensorrt_version_string(101601) == "10.16.1");
    CHECK(tensorrt_version_string(110100) == "11.1.0");
    CHECK(tensorrt_type_name(0) == "float32" && tensorrt_type_name(1) == "float16");
    CHECK(tensorrt_type_name(6) == "fp8" && tensorrt_type_name(7) == "bfloat16" && tensorrt_type_name(99) == "type 99");
    CHECK(tensorrt_io_type_problem("m.plan", "logits", 0).empty());
    CHECK(tensorrt_io_type_problem("m.plan", "logits", 7)
              .find("engine m.plan: tensor 'logits' is bfloat16; this "
                    "runtime reads and writes float32 only") == 0);
    CHECK(tensorrt_io_type_problem("m.plan", "image", 6).find("tensor 'image' is fp8") != std::string::npos);

    // The compatibility rules and the rebuild command are tested once, through their Python binding
    // (tests/runtime/test_engine_info.py); here: that the C++ runtime reaches them.
    const Platform server{std::string("10.16.1"), std::string("NVIDIA H100"), std::string("9.0")};
    const Compatibility c = check_compatibility(orin_info(), server, "m.plan");
    CHECK(!c.ok() &&
          c.message("m.plan").find("engine m.plan does not fit this machine: built by TensorRT 10.3.0") == 0);

    const std::string sidecar = R"({"meta": {"class_names": ["a", "b"]}, "engine": {"tensorrt_version": "10.3.0",
      "gpu_name": "Orin", "compute_capability": "8.7", "precision": "int8", "version_compatible": true,
      "hardware_compatibility": null, "dla_core": 0, "future_field": [1],
      "profile": {"min": [1, 3, 8, 8], "opt": [1, 3, 16, 16], "max": [1, 3, 32, 32]}}})";
    const auto [meta, parsed] = parse_sidecar(sidecar, "x.plan.json");
    CHECK(meta.n_classes() == 2 && parsed.precision == "int8" && parsed.version_compatible && parsed.dla_core == 0);
    CHECK(!parsed.hardware_compatibility && parsed.profile[2][3] == 32);
    CHECK_THROWS(parse_sidecar(R"({"meta": {"class_names": ["a"]}, "engine": {"tensorrt_version": "1",
      "gpu_name": "g", "compute_capability": "8.7", "precision": "fp32", "profile": {"min": [1, 3, 8]}}})",
                               "p"),
                 ErrorCode::metadata, "engine sidecar: profile must hold min/opt/max shapes of 4 dimensions");
    CHECK_THROWS(parse_sidecar(R"({"meta": {"class_names": ["a"], "mean": 3}, "engine": {}})", "p.json"),
                 ErrorCode::metadata, "engine sidecar p.json: mean must be a list, got int");
    CHECK_THROWS(parse_sidecar(R"({"meta": {"class_names": ["a"]}, "engine": []})", "p.json"), ErrorCode::metadata,
                 "engine sidecar: 'engine' must be a JSON object");
    CHECK_THROWS(read_sidecar("/nonexistent/m.plan"), ErrorCode::metadata,
                 "engine /nonexistent/m.plan has no metadata sidecar (m.plan.json)");
}

static nlohmann::json read_cases(const std::string& path) {
    std::ifstream f(path);
    CHECK(f.good());
    std::ostringstream text;
    text << f.rdbuf();
    return nlohmann::json::parse(text.str()).at("cases");
}

// The cases of tests/data/preprocess_cases.json, which the Python runtime's tests read too: the same input bit for
// bit, or the same error.
static void test_preprocess(const std::string& cases_path) {
    const auto cases = read_cases(cases_path);
    CHECK(cases.size() >= 6);
    for (const auto& c : cases) {
        const int h = c.at("height").get<int>(), w = c.at("width").get<int>();
        const std::vector<std::uint8_t> img = c.at("image").get<std::vector<std::uint8_t>>();
        CHECK(img.size() == static_cast<std::size_t>(h) * w * 3);
        const deeplab::ModelMeta meta = deeplab::ModelMeta::from_json(c.at("meta").dump());
        std::optional<std::pair<int, int>> pad_to;
        if (!c.at("pad_to").is_null())
            pad_to = std::make_pair(c.at("pad_to")[0].get<int>(), c.at("pad_to")[1].get<int>());
        std::vector<float> x;
        const std::string name = c.at("name").get<std::string>();
        if (!c.at("error").is_null()) {
            const std::string error = c.at("error").get<std::string>();
            CHECK_THROWS(deeplab::preprocess({img.data(), h, w, 0}, meta, x, pad_to), ErrorCode::invalid_argument,
                         error.c_str());
            continue;
        }
        const deeplab::Padding p = deeplab::preprocess({img.data(), h, w, 0}, meta, x, pad_to);
        const std::vector<float> want = c.at("input").get<std::vector<float>>();
        const bool same = p.height == h && p.width == w && p.padded_height == c.at("padded")[0].get<int>() &&
                          p.padded_width == c.at("padded")[1].get<int>() && x == want;
        if (!same)
            std::fprintf(stderr, "preprocess case \"%s\": the input differs from the shared case\n", name.c_str());
        CHECK(same);
    }
    std::vector<float> x;
    deeplab::ModelMeta meta;
    CHECK_THROWS(deeplab::preprocess({nullptr, 3, 10, 0}, meta, x), ErrorCode::invalid_argument, "image data is NULL");
    // DeepLab v2's logits for padded inputs (export/model.py's output_size: 288 -> 37, 384 -> 49, 240 -> 31, 320 -> 41)
    CHECK(deeplab::logits_size(288, 384, 8) == std::make_pair(37, 49));
    CHECK(deeplab::logits_size(240, 320, 8) == std::make_pair(31, 41));
    CHECK(deeplab::logits_size(8, 8, 8) == std::make_pair(2, 2));
}

static void test_npy(const std::string& dir) {
    const std::string path = dir + "/roundtrip.npy";
    const std::vector<float> v = {1.5f, -2.0f, 3.25f, 0.0f, 1e-30f, 7.0f};
    deeplab::write_npy(path, v.data(), {1, 2, 3});
    const deeplab::NpyArray a = deeplab::read_npy(path);
    CHECK(a.dtype == "<f4" && a.shape == (std::vector<std::int64_t>{1, 2, 3}) && a.f32 == v);
    const std::vector<std::uint8_t> u = {0, 255, 7};
    deeplab::write_npy(path, u.data(), {3});
    const deeplab::NpyArray b = deeplab::read_npy(path);
    CHECK(b.dtype == "|u1" && b.shape == std::vector<std::int64_t>{3} && b.u8 == u);
    std::FILE* f = std::fopen(path.c_str(), "wb");
    std::fwrite("\x93NUMPY\x01\x00\x10", 1, 9, f);  // a 1.0 header whose length field is cut short
    std::fclose(f);
    CHECK_THROWS(deeplab::read_npy(path), ErrorCode::invalid_argument, "truncated header");
    CHECK_THROWS(deeplab::read_npy(dir + "/missing.npy"), ErrorCode::io, "cannot read");
    std::remove(path.c_str());
}

int main(int argc, char** argv) {
    test_meta(argc > 2 ? argv[2] : "tests/data/model_meta_cases.json");
    test_engine_info();
    test_preprocess(argc > 3 ? argv[3] : "tests/data/preprocess_cases.json");
    test_npy(argc > 1 ? argv[1] : ".");
    return report("test_units");
}
