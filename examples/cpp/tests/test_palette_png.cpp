// The palette PNG encoder: OpenCV (libpng: CRCs, zlib stream) decodes the file to the palette's colours, and the
// raw palette indices survive (checked through IMREAD_UNCHANGED's colour expansion against the VOC palette).
#include <cstdio>
#include <string>
#include <vector>

#include <opencv2/imgcodecs.hpp>

#include "palette_png.hpp"

int main(int argc, char** argv) {
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
