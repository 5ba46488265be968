// The palette PNG encoder: OpenCV (libpng: CRCs, zlib stream) decodes the file to the palette's colours.
//   test_palette_png WORK_DIR                      encode/decode round trip
//   test_palette_png --check MASK.png LABELS.npy   a mask written by deeplab_segment holds these labels
#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include <opencv2/imgcodecs.hpp>

#include "deeplab/npy.hpp"
#include "palette_png.hpp"

/// Decode a palette PNG (as colours) and map the colours back to VOC class indices.
static int check_mask(const std::string& mask, const std::string& expected_npy) {
    const cv::Mat bgr = cv::imread(mask, cv::IMREAD_COLOR);
    const deeplab::NpyArray expected = deeplab::read_npy(expected_npy);
    if (bgr.empty() || expected.shape.size() != 2 || bgr.rows != expected.shape[0] || bgr.cols != expected.shape[1]) {
        std::printf("%s: missing, or not %lldx%lld\n", mask.c_str(), (long long)expected.shape[1],
                    (long long)expected.shape[0]);
        return 1;
    }
    const example::Palette p = example::voc_palette();
    long bad = 0;
    for (int y = 0; y < bgr.rows; ++y)
        for (int x = 0; x < bgr.cols; ++x) {
            const cv::Vec3b c = bgr.at<cv::Vec3b>(y, x);
            const int l = expected.u8[static_cast<size_t>(y) * bgr.cols + x];
            bad += c[2] != p[3 * l] || c[1] != p[3 * l + 1] || c[0] != p[3 * l + 2];
        }
    std::printf("%s: %ld of %d pixels differ from %s\n", mask.c_str(), bad, bgr.rows * bgr.cols, expected_npy.c_str());
    return bad ? 1 : 0;
}

int main(int argc, char** argv) {
    if (argc == 4 && std::string(argv[1]) == "--check") {
        try {
            return check_mask(argv[2], argv[3]);
        } catch (const std::exception& e) {
            std::printf("error: %s\n", e.what());
            return 1;
        }
    }
    const std::string path = std::string(argc > 1 ? argv[1] : ".") + "/palette_test.png";
    const int h = 13, w = 29;
    std::vector<std::uint8_t> labels(h * w);
    for (int i = 0; i < h * w; ++i) labels[i] = static_cast<std::uint8_t>((i * 37) % 256);
    const example::Palette p = example::voc_palette();
    if (p[3 * 1] != 128 || p[3 * 1 + 1] != 0 || p[3 * 2 + 1] != 128 || p[3 * 255] != 224) {
        std::puts("VOC palette is wrong");
        return 1;
    }
    example::write_palette_png(path, labels.data(), h, w, p);
    const cv::Mat bgr = cv::imread(path, cv::IMREAD_COLOR);
    if (bgr.rows != h || bgr.cols != w) {
        std::puts("decoded size is wrong");
        return 1;
    }
    int bad = 0;
    for (int y = 0; y < h; ++y)
        for (int x = 0; x < w; ++x) {
            const cv::Vec3b c = bgr.at<cv::Vec3b>(y, x);
            const int l = labels[y * w + x];
            bad += c[2] != p[3 * l] || c[1] != p[3 * l + 1] || c[0] != p[3 * l + 2];
        }
    std::remove(path.c_str());
    if (bad) {
        std::printf("%d pixels decode to the wrong colour\n", bad);
        return 1;
    }
    std::puts("palette PNG OK");
    return 0;
}
