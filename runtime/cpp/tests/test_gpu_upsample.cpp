// The GPU upsampling behind deeplab::Segmenter (CUDA builds): logits handed over in device memory, as the TensorRT
// runner does, give the labels and probabilities the Python package produced (tests/data). Where the kernels cannot
// run (no driver, no GPU, or no kernel image for its architecture) the runtime warns once on stderr and upsamples the
// host copy on the CPU: on a machine without a GPU this test checks that fallback.
#include <cuda_runtime_api.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>

#include "check.hpp"
#include "golden.hpp"
#include "deeplab/segmenter.hpp"

namespace {

/// The logits on the host and, where a GPU exists, on the device; without one the host pointer stands in as the
/// "device" copy (the probe fails before anything reads it).
class DeviceLogits final : public deeplab::LogitsProvider {
  public:
    DeviceLogits(const deeplab::NpyArray& a, bool gpu) : a_(a) {
        device_ = a.f32.data();
        if (gpu) {
            void* p = nullptr;
            CHECK(cudaMalloc(&p, a.f32.size() * sizeof(float)) == cudaSuccess);
            CHECK(cudaMemcpy(p, a.f32.data(), a.f32.size() * sizeof(float), cudaMemcpyHostToDevice) == cudaSuccess);
            owned_ = p;
            device_ = static_cast<const float*>(p);
        }
    }
    ~DeviceLogits() override {
        if (owned_) cudaFree(owned_);
    }
    deeplab::LogitsView infer(const float*, int, int) override {
        deeplab::LogitsView v{a_.f32.data(), static_cast<int>(a_.shape[0]), static_cast<int>(a_.shape[1]),
                              static_cast<int>(a_.shape[2])};
        v.device_data = device_;
        return v;
    }

  private:
    const deeplab::NpyArray& a_;
    const float* device_ = nullptr;
    void* owned_ = nullptr;
};

/// Runs `body` with stderr going to a file, and returns what it wrote there.
template <typename Body>
std::string capture_stderr(const std::string& path, Body body) {
    std::fflush(stderr);
    const int saved = dup(2);
    CHECK(std::freopen(path.c_str(), "w", stderr) != nullptr);
    body();
    std::fflush(stderr);
    dup2(saved, 2);
    close(saved);
    std::ifstream f(path);
    std::stringstream s;
    s << f.rdbuf();
    return s.str();
}

size_t count(const std::string& text, const std::string& needle) {
    size_t n = 0;
    for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
    return n;
}

}  // namespace

int main(int argc, char** argv) {
    const std::string dir = argc > 1 ? argv[1] : "data";
    const std::string work = argc > 2 ? argv[2] : ".";
    const Golden g(dir);
    const deeplab::ImageView view{g.image.u8.data(), g.height(), g.width(), 0};

    int devices = 0;
    const bool gpu = cudaGetDeviceCount(&devices) == cudaSuccess && devices > 0;
    std::printf("%s\n", gpu ? "GPU found: the kernels upsample device logits" : "no GPU: the CPU fallback");

    deeplab::SegmenterOptions off;
    off.crf = false;
    deeplab::Segmenter seg(g.meta, std::make_unique<DeviceLogits>(g.logits, gpu), off);
    std::vector<std::uint8_t> l1, l2;
    std::vector<float> p;
    const std::string err = capture_stderr(work + "/test_gpu_upsample.stderr", [&] {
        seg.segment(view, l1);      // labels straight from the logits
        seg.segment(view, l2, &p);  // probabilities, labels from their argmax
    });
    std::fputs(err.c_str(), stdout);
    CHECK(count(err, "warning: the CUDA upsampling kernels cannot run on") == (gpu ? 0u : 1u));
    CHECK(l1 == g.labels.u8);
    CHECK(l2 == g.labels.u8);
    const double worst = max_abs_diff(p, g.probs.f32);
    std::printf("upsample+softmax: max |diff| %.3g\n", worst);
    CHECK(worst <= (gpu ? 1e-5 : 1e-6));  // the GPU's expf may differ from the CPU's in the last bits
    return report("test_gpu_upsample");
}
