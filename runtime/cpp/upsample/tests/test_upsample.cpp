// CTest for deeplab::upsample (CPU): known align_corners values, softmax normalization, argmax/softmax/crop agreement,
// threads, and invalid shapes. Parity with torch is tested from Python (tests/runtime/test_upsample.py).
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <stdexcept>
#include <vector>

#include "deeplab/upsample.hpp"

static int failures = 0;
#define CHECK(cond)                                                                \
    do {                                                                           \
        if (!(cond)) {                                                             \
            std::fprintf(stderr, "%s:%d: CHECK(%s)\n", __FILE__, __LINE__, #cond); \
            ++failures;                                                            \
        }                                                                          \
    } while (0)

int main() {
    using deeplab::UpsampleShape;
    // 1×1×2×2 -> 3×3 with align_corners: corners kept, centre = mean.
    {
        const std::vector<float> in = {0.f, 2.f, 4.f, 6.f};
        std::vector<float> out(9);
        UpsampleShape s{1, 1, 2, 2, 3, 3};
        deeplab::bilinear(in.data(), out.data(), s, true);
        const float expect[9] = {0, 1, 2, 2, 3, 4, 4, 5, 6};
        for (int i = 0; i < 9; ++i) CHECK(std::fabs(out[i] - expect[i]) < 1e-6f);
    }
    // Random logits: softmax sums to 1, argmax agrees, crop equals the top-left of the full output, threads agree.
    {
        const int n = 2, c = 5, h = 7, w = 9, H = 56, W = 72, ch = 50, cw = 61;
        std::vector<float> in(n * c * h * w);
        unsigned seed = 12345;
        for (auto& v : in) v = static_cast<float>((seed = seed * 1103515245u + 12345u) >> 16 & 0x7fff) / 3276.7f - 5.f;
        for (bool ac : {false, true}) {
            UpsampleShape full{n, c, h, w, H, W};
            UpsampleShape crop{n, c, h, w, H, W, ch, cw};
            std::vector<float> values(n * c * H * W), probs(n * c * ch * cw), probs1(n * c * ch * cw);
            std::vector<std::uint8_t> labels(n * ch * cw);
            std::vector<std::int32_t> labels32(n * ch * cw);
            deeplab::bilinear(in.data(), values.data(), full, ac);
            deeplab::bilinear_softmax(in.data(), probs.data(), crop, ac);
            deeplab::bilinear_argmax(in.data(), labels.data(), crop, ac);
            deeplab::bilinear_argmax(in.data(), labels32.data(), crop, ac);
            deeplab::set_num_threads(1);
            deeplab::bilinear_softmax(in.data(), probs1.data(), crop, ac);
            deeplab::set_num_threads(0);
            CHECK(probs == probs1);
            for (int b = 0; b < n; ++b)
                for (int y = 0; y < ch; ++y)
                    for (int x = 0; x < cw; ++x) {
                        double sum = 0, vmax = -1e30;
                        int best = 0;
                        for (int k = 0; k < c; ++k) {
                            const double v = values[((b * c + k) * H + y) * W + x];
                            if (v > vmax) vmax = v, best = k;
                        }
                        double denominator = 0;
                        for (int k = 0; k < c; ++k)
                            denominator += std::exp(values[((b * c + k) * H + y) * W + x] - vmax);
                        for (int k = 0; k < c; ++k) {
                            const double p = probs[((b * c + k) * ch + y) * cw + x];
                            CHECK(std::fabs(p - std::exp(values[((b * c + k) * H + y) * W + x] - vmax) / denominator) <
                                  1e-6);
                            sum += p;
                        }
                        CHECK(std::fabs(sum - 1.0) < 1e-5);
                        CHECK(labels[(b * ch + y) * cw + x] == best);
                        CHECK(labels32[(b * ch + y) * cw + x] == best);
                    }
        }
    }
    // Invalid shapes throw.
    {
        std::vector<float> buf(16);
        bool threw = false;
        try {
            deeplab::bilinear(buf.data(), buf.data(), UpsampleShape{1, 1, 2, 2, 4, 4, 5, 4}, false);
        } catch (const std::invalid_argument&) {
            threw = true;
        }
        CHECK(threw);
        threw = false;
        try {
            deeplab::bilinear(buf.data(), buf.data(), UpsampleShape{1, 0, 2, 2, 4, 4}, false);
        } catch (const std::invalid_argument&) {
            threw = true;
        }
        CHECK(threw);
    }
    if (failures)
        std::fprintf(stderr, "%d failures\n", failures);
    else
        std::printf("upsample: all checks passed\n");
    return failures ? 1 : 0;
}
