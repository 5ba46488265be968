// crf.gpu_host_parity: the GPU CRF's algorithms (crf/include/crf/gpu.hpp), run on Thrust's host systems, against the
// CPU CRF (crf::refine) on every reference photo and every preset: argmax agreement >= 99.9 %, probabilities within
// 1e-3. Also: the serial and OpenMP systems give the same bits, a second frame through the same workspace gives the
// same bits as the first, and the labels output is the argmax of the probabilities. In CUDA builds: on a GPU, the CUDA
// system gives the host systems' bits (host and device pointers); without one, GpuRefiner(Cuda) refuses to start.
//
// Photos as benchmarks/crf_bench.py prepares them (centre crop to the aspect ratio, area resize) with DCNN-like soft
// probabilities (a smooth random label map at 1/8 resolution, noisy logits, bilinear upsampling, softmax).
//   test_gpu_host_parity IMAGE_DIR [WIDTH HEIGHT]   (default 500 x 375; exit 77 when IMAGE_DIR is missing, unless CI)
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "check.hpp"
#include "crf/crf.hpp"
#include "crf/gpu.hpp"

using namespace deeplab::crf;

namespace {

// RGB, centre-cropped to width:height and resized with area averaging (crf_bench's load_image).
std::vector<std::uint8_t> load_photo(const std::string& path, int width, int height) {
    cv::Mat bgr = cv::imread(path, cv::IMREAD_COLOR);
    if (bgr.empty()) return {};
    const double scale = std::max(double(width) / bgr.cols, double(height) / bgr.rows);
    cv::Mat resized;
    cv::resize(bgr, resized,
               cv::Size(std::max(width, int(std::lround(bgr.cols * scale))),
                        std::max(height, int(std::lround(bgr.rows * scale)))),
               0, 0, cv::INTER_AREA);
    const int y0 = (resized.rows - height) / 2, x0 = (resized.cols - width) / 2;
    cv::Mat rgb;
    cv::cvtColor(resized(cv::Rect(x0, y0, width, height)), rgb, cv::COLOR_BGR2RGB);
    std::vector<std::uint8_t> out(static_cast<std::size_t>(width) * height * 3);
    for (int y = 0; y < height; ++y) std::memcpy(out.data() + std::size_t(y) * width * 3, rgb.ptr(y), width * 3);
    return out;
}

// n_labels x height x width soft probabilities, confident inside regions and uncertain at their blurred boundaries.
std::vector<float> synthetic_probabilities(int width, int height, int labels, unsigned seed) {
    std::mt19937 rng(seed);
    const int cw = (width + 7) / 8, ch = (height + 7) / 8, region = 6;
    std::vector<int> coarse((ch / region + 2) * (cw / region + 2));
    for (int& c : coarse) c = static_cast<int>(rng() % labels);
    std::normal_distribution<float> noise(0.f, 1.f);
    std::vector<float> logits(static_cast<std::size_t>(labels) * cw * ch);
    for (int y = 0; y < ch; ++y)
        for (int x = 0; x < cw; ++x) {
            const int label = coarse[(y / region) * (cw / region + 2) + x / region];
            for (int l = 0; l < labels; ++l)
                logits[(std::size_t(l) * ch + y) * cw + x] = (l == label ? 4.f : 0.f) + noise(rng);
        }
    const auto axis = [](int n_out, int n_in, int i, int& i0, int& i1, float& t) {
        const float x = std::clamp((i + 0.5f) * (float(n_in) / n_out) - 0.5f, 0.f, n_in - 1.f);
        i0 = int(x);
        i1 = std::min(i0 + 1, n_in - 1);
        t = x - i0;
    };
    const std::size_t n = std::size_t(width) * height;
    std::vector<float> probs(labels * n), e(labels);
    for (int y = 0; y < height; ++y) {
        int y0, y1;
        float ty;
        axis(height, ch, y, y0, y1, ty);
        for (int x = 0; x < width; ++x) {
            int x0, x1;
            float tx;
            axis(width, cw, x, x0, x1, tx);
            float mx = -1e30f;
            for (int l = 0; l < labels; ++l) {
                const float* g = logits.data() + std::size_t(l) * ch * cw;
                const float top = g[y0 * cw + x0] * (1 - tx) + g[y0 * cw + x1] * tx;
                const float bottom = g[y1 * cw + x0] * (1 - tx) + g[y1 * cw + x1] * tx;
                e[l] = top * (1 - ty) + bottom * ty;
                mx = std::max(mx, e[l]);
            }
            float sum = 0.f;
            for (int l = 0; l < labels; ++l) sum += (e[l] = std::exp(e[l] - mx));
            for (int l = 0; l < labels; ++l) probs[l * n + std::size_t(y) * width + x] = e[l] / sum;
        }
    }
    return probs;
}

struct Case {
    std::string name;
    RefineParams params;
    bool warm = false;  // start mean field from the probabilities themselves
};

RefineParams float_rows(RefineParams p) {
    p.half_rows = false;
    return p;
}

}  // namespace

int main(int argc, char** argv) {
    const char* env = std::getenv("DEEPLAB_REFERENCE");
    const std::string dir = argc > 1 ? argv[1] : (env ? std::string(env) + "/images" : "");
    const int width = argc > 3 ? std::atoi(argv[2]) : 500, height = argc > 3 ? std::atoi(argv[3]) : 375;
    std::vector<std::string> photos;
    if (!dir.empty() && std::filesystem::is_directory(dir))
        for (const auto& entry : std::filesystem::directory_iterator(dir)) {
            std::string ext = entry.path().extension().string();
            std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
            if (ext == ".jpg" || ext == ".jpeg" || ext == ".png") photos.push_back(entry.path().string());
        }
    std::sort(photos.begin(), photos.end());
    if (photos.empty()) {
        std::printf("no reference photos in '%s' (../shared/reference/images)\n", dir.c_str());
        return std::getenv("CI") ? 1 : 77;
    }
    const int labels = 21;
    const std::vector<Case> cases = {{"voc", RefineParams::voc()},
                                     {"pydensecrf", RefineParams::pydensecrf()},
                                     {"video", RefineParams::video(RefineParams::voc())},
                                     {"voc, float rows", float_rows(RefineParams::voc())},
                                     {"video, warm start", RefineParams::video(RefineParams::voc()), true}};
    const bool openmp = gpu_system_compiled(GpuSystem::HostOpenMP);
    GpuRefiner serial(GpuSystem::HostSerial);
    std::unique_ptr<GpuRefiner> parallel = openmp ? std::make_unique<GpuRefiner>(GpuSystem::HostOpenMP) : nullptr;
    std::unique_ptr<GpuRefiner> cuda;
    if (gpu_system_compiled(GpuSystem::Cuda)) {
        if (cuda_available()) {
            cuda = std::make_unique<GpuRefiner>(GpuSystem::Cuda);
        } else {
            bool refused = false;
            try {
                GpuRefiner unavailable(GpuSystem::Cuda);
            } catch (const std::runtime_error&) {
                refused = true;
            }
            check(refused, "GpuRefiner(Cuda) without a usable GPU must throw std::runtime_error");
        }
    }
    const std::size_t n = std::size_t(width) * height;
    double worst_agreement = 1.0, worst_diff = 0.0;
    for (std::size_t k = 0; k < photos.size(); ++k) {
        const std::vector<std::uint8_t> image = load_photo(photos[k], width, height);
        check(!image.empty(), "decode " + photos[k]);
        if (image.empty()) continue;
        const std::vector<float> probs = synthetic_probabilities(width, height, labels, unsigned(k));
        for (const Case& c : cases) {
            const std::string what = std::filesystem::path(photos[k]).filename().string() + " / " + c.name;
            std::vector<float> cpu(probs.size()), gpu(probs.size()), again(probs.size()), omp(probs.size());
            std::vector<std::int32_t> gpu_labels(n);
            RefineOptions options;
            options.cache = nullptr;
            options.threads = 1;
            const float* init = c.warm ? probs.data() : nullptr;
            options.init = init;
            refine(image.data(), width, height, probs.data(), labels, c.params, cpu.data(), options);
            serial.refine(image.data(), width, height, probs.data(), labels, c.params, gpu.data(), init,
                          gpu_labels.data());
            serial.refine(image.data(), width, height, probs.data(), labels, c.params, again.data(), init);
            check(std::memcmp(gpu.data(), again.data(), gpu.size() * 4) == 0, what + ": a second run's bits differ");
            if (parallel) {
                parallel->refine(image.data(), width, height, probs.data(), labels, c.params, omp.data(), init);
                check(std::memcmp(gpu.data(), omp.data(), gpu.size() * 4) == 0,
                      what + ": the OpenMP system's bits differ from the serial system's");
            }
            if (cuda) {
                std::vector<float> on_gpu(probs.size());
                cuda->refine(image.data(), width, height, probs.data(), labels, c.params, on_gpu.data(), init);
                check(std::memcmp(gpu.data(), on_gpu.data(), gpu.size() * 4) == 0,
                      what + ": the CUDA system's bits differ from the host systems'");
            }
            std::size_t agree = 0, label_ok = 0;
            double diff = 0.0;
            for (std::size_t i = 0; i < n; ++i) {
                int a = 0, b = 0;
                for (int l = 1; l < labels; ++l) {
                    if (cpu[l * n + i] > cpu[a * n + i]) a = l;
                    if (gpu[l * n + i] > gpu[b * n + i]) b = l;
                    diff = std::max(diff, double(std::fabs(cpu[l * n + i] - gpu[l * n + i])));
                }
                diff = std::max(diff, double(std::fabs(cpu[i] - gpu[i])));
                agree += a == b;
                label_ok += gpu_labels[i] == b;
            }
            const double agreement = double(agree) / n;
            worst_agreement = std::min(worst_agreement, agreement);
            worst_diff = std::max(worst_diff, diff);
            std::printf("%-32s labels %.5f  max |dp| %.2e\n", what.c_str(), agreement, diff);
            check(agreement >= 0.999, what + ": argmax agreement below 99.9 %");
            check(diff <= 1e-3, what + ": probabilities differ by more than 1e-3");
            check(label_ok == n, what + ": the labels output is not the argmax");
        }
    }
    std::printf(
        "%zu photos x %zu presets at %dx%d, %d labels (OpenMP system %s, CUDA system %s): worst agreement %.5f, "
        "worst |dp| %.2e\n",
        photos.size(), cases.size(), width, height, labels, openmp ? "compared" : "not built",
        cuda ? "compared" : "not run", worst_agreement, worst_diff);
    if (g_failures) std::printf("%d failure(s)\n", g_failures);
    return g_failures ? 1 : 0;
}
