// deeplab_segment: an example service on the C++ runtime. Reads a video, a camera, an image or a directory of images
// with OpenCV, runs the chain (preprocess -> network -> upsample + softmax -> dense CRF), writes one palette label PNG
// per frame (as runtime/infer.py --masks does) and prints per-stage latency.
//
// Cameras and streams: csi://N, v4l2:///dev/videoN, /dev/videoN, rtsp://... and gst:PIPELINE open through OpenCV's
// GStreamer backend with the pipelines of deeplab/gst_pipeline.hpp (the builder the Python runtime binds); rtsp://
// falls back to FFmpeg where OpenCV has no GStreamer.
//
// The network is a TensorRT engine (--engine, in builds with TensorRT) or precomputed logits (--logits DIR: one
// <frame name>.npy per frame and meta.json, as `examples/cpp/dump_logits.py --out DIR` writes them), so the rest of the
// chain runs on machines without a GPU.
#include <dlfcn.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

#include <opencv2/core.hpp>
#include <opencv2/core/utils/logger.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <opencv2/videoio.hpp>
#include <opencv2/videoio/registry.hpp>

#include "deeplab/error.hpp"
#include "deeplab/gst_pipeline.hpp"
#include "deeplab/npy.hpp"
#include "deeplab/segmenter.hpp"
#include "palette_png.hpp"

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

const char* kUsage =
    "usage: deeplab_segment --source VIDEO|URL|IMAGE|DIR|CAMERA|csi://N|v4l2:///dev/videoN|gst:PIPELINE\n"
    "                       (--engine PLAN | --logits DIR [--meta FILE])\n"
    "                       [--masks DIR] [--no-crf] [--crf-preset NAME] [--crf-iters N] [--crf-scale S]\n"
    "                       [--warm-start] [--threads N] [--device N] [--max-frames N] [--verbose]\n";

struct Args {
    std::string source, engine, logits, meta, masks, crf_preset = "default";
    bool crf = true, warm_start = false, verbose = false;
    int crf_iters = -1, threads = 0, device = 0;
    float crf_scale = 0.f;
    long max_frames = -1;
};

[[noreturn]] void usage_error(const std::string& message) {
    std::fprintf(stderr, "error: %s\n%s", message.c_str(), kUsage);
    std::exit(2);
}

/// `v` as a whole int or float, or a usage error naming the flag.
template <class T>
T to_number(const std::string& flag, const std::string& v) {
    try {
        size_t used = 0;
        T n;
        if constexpr (std::is_integral_v<T>)
            n = std::stoi(v, &used);
        else
            n = std::stof(v, &used);
        if (used == v.size()) return n;
    } catch (const std::exception&) {
    }
    usage_error(flag + (std::is_integral_v<T> ? " needs an integer" : " needs a number") + ", got '" + v + "'");
}

Args parse_args(int argc, char** argv) {
    Args a;
    for (int i = 1; i < argc; ++i) {
        const std::string f = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) usage_error(f + " needs a value");
            return argv[++i];
        };
        if (f == "--source")
            a.source = value();
        else if (f == "--engine")
            a.engine = value();
        else if (f == "--logits")
            a.logits = value();
        else if (f == "--meta")
            a.meta = value();
        else if (f == "--masks")
            a.masks = value();
        else if (f == "--no-crf")
            a.crf = false;
        else if (f == "--crf-preset")
            a.crf_preset = value();
        else if (f == "--crf-iters")
            a.crf_iters = to_number<int>(f, value());
        else if (f == "--crf-scale")
            a.crf_scale = to_number<float>(f, value());
        else if (f == "--warm-start")
            a.warm_start = true;
        else if (f == "--threads")
            a.threads = to_number<int>(f, value());
        else if (f == "--device")
            a.device = to_number<int>(f, value());
        else if (f == "--max-frames")
            a.max_frames = to_number<int>(f, value());
        else if (f == "--verbose" || f == "-v")
            a.verbose = true;
        else if (f == "--help" || f == "-h") {
            std::fputs(kUsage, stdout);
            std::exit(0);
        } else
            usage_error("unknown argument " + f);
    }
    if (a.source.empty()) usage_error("--source is required");
    if (a.engine.empty() == a.logits.empty()) usage_error("give exactly one of --engine and --logits");
    if (a.crf_iters < -1) usage_error("--crf-iters must be >= 0");
    if (!(a.crf_scale > 0.f && a.crf_scale <= 1.f) && a.crf_scale != 0.f) usage_error("--crf-scale must be in (0, 1]");
    return a;
}

std::string read_text(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    if (!f) throw deeplab::Error(deeplab::ErrorCode::io, "cannot read " + path);
    std::stringstream s;
    s << f.rdbuf();
    return s.str();
}

/// Logits computed elsewhere (examples/cpp/dump_logits.py): DIR/<frame name>.npy, C×h×w or 1×C×h×w float32.
class NpyLogits final : public deeplab::LogitsProvider {
  public:
    explicit NpyLogits(std::string dir) : dir_(std::move(dir)) {}
    void set_frame(const std::string& name) { name_ = name; }
    deeplab::LogitsView infer(const float*, int, int) override {
        const std::string path = dir_ + "/" + name_ + ".npy";
        if (!fs::exists(path))
            throw deeplab::Error(deeplab::ErrorCode::provider, "no logits for frame " + name_ + " (" + path + ")");
        array_ = deeplab::read_npy(path);
        auto s = array_.shape;
        if (s.size() == 4 && s[0] == 1) s.erase(s.begin());
        if (array_.dtype != "<f4" || s.size() != 3)
            throw deeplab::Error(deeplab::ErrorCode::provider, path + ": expected C×h×w (or 1×C×h×w) float32 logits");
        return {array_.f32.data(), static_cast<int>(s[0]), static_cast<int>(s[1]), static_cast<int>(s[2])};
    }

  private:
    std::string dir_, name_;
    deeplab::NpyArray array_;
};

/// runtime.preprocess.to_bgr8 for what OpenCV decodes: grey, BGRA and 16-bit images become 8-bit BGR.
cv::Mat to_bgr8(const cv::Mat& in) {
    cv::Mat m = in;
    if (m.depth() == CV_16U) {  // the high byte, as numpy's `image >> 8` (convertTo would round)
        cv::Mat high(m.size(), CV_MAKETYPE(CV_8U, m.channels()));
        for (int y = 0; y < m.rows; ++y) {
            const std::uint16_t* src = m.ptr<std::uint16_t>(y);
            std::uint8_t* dst = high.ptr<std::uint8_t>(y);
            for (int x = 0; x < m.cols * m.channels(); ++x) dst[x] = static_cast<std::uint8_t>(src[x] >> 8);
        }
        m = high;
    } else if (m.depth() != CV_8U) {
        throw deeplab::Error(deeplab::ErrorCode::invalid_argument, "unsupported pixel depth (8- or 16-bit only)");
    }
    if (m.channels() == 1)
        cv::cvtColor(m, m, cv::COLOR_GRAY2BGR);
    else if (m.channels() == 4)
        cv::cvtColor(m, m, cv::COLOR_BGRA2BGR);
    return m.isContinuous() ? m : m.clone();
}

struct Frame {
    std::string name;
    cv::Mat image;
    double decode_ms = 0;
};

/// The elements of deeplab::gst_elements() that GStreamer has here (empty without OpenCV's GStreamer backend). The
/// registry is asked through libgstreamer, which that backend loads: no GStreamer headers are needed to build this.
std::set<std::string> gst_elements_present() {
    std::set<std::string> found;
    if (!cv::videoio_registry::hasBackend(cv::CAP_GSTREAMER)) return found;
    void* lib = dlopen("libgstreamer-1.0.so.0", RTLD_NOW | RTLD_LOCAL);
    if (lib == nullptr) return found;
    using InitCheck = int (*)(int*, char***, void**);
    using Find = void* (*)(const char*);
    using Unref = void (*)(void*);
    const auto init = reinterpret_cast<InitCheck>(dlsym(lib, "gst_init_check"));
    const auto find = reinterpret_cast<Find>(dlsym(lib, "gst_element_factory_find"));
    const auto unref = reinterpret_cast<Unref>(dlsym(lib, "gst_object_unref"));
    if (init == nullptr || find == nullptr || unref == nullptr || !init(nullptr, nullptr, nullptr)) return found;
    for (const std::string& name : deeplab::gst_elements()) {
        if (void* factory = find(name.c_str())) {
            found.insert(name);
            unref(factory);
        }
    }
    return found;
}

/// Opens a GStreamer URI with OpenCV's GStreamer backend; deeplab::Error with one line when it cannot.
cv::VideoCapture open_gstreamer(const std::string& spec) {
    if (!cv::videoio_registry::hasBackend(cv::CAP_GSTREAMER))
        throw deeplab::Error(deeplab::ErrorCode::io, spec +
                                                         ": this OpenCV was built without GStreamer (Debian's "
                                                         "libopencv-dev and JetPack's OpenCV have it)");
    deeplab::GstPipeline pipeline;
    try {
        pipeline = deeplab::gst_pipeline(spec, gst_elements_present());
    } catch (const std::invalid_argument& e) {
        throw deeplab::Error(deeplab::ErrorCode::io, e.what());
    }
    cv::VideoCapture capture(pipeline.pipeline, cv::CAP_GSTREAMER);
    if (!capture.isOpened()) throw deeplab::Error(deeplab::ErrorCode::io, "cannot open " + spec + " through GStreamer");
    return capture;
}

/// Frames from a video/camera (named 000000, 000001, ...) or images (named by their stem), as runtime/sources.py.
class Source {
  public:
    explicit Source(const std::string& spec) {
        static const std::vector<std::string> image_suffixes = {".jpg",  ".jpeg", ".png", ".bmp", ".tif",
                                                                ".tiff", ".webp", ".pgm", ".ppm", ".pnm"};
        auto is_image = [&](const fs::path& p) {
            std::string ext = p.extension().string();
            std::transform(ext.begin(), ext.end(), ext.begin(), ::tolower);
            return std::find(image_suffixes.begin(), image_suffixes.end(), ext) != image_suffixes.end();
        };
        const bool camera = !spec.empty() && std::all_of(spec.begin(), spec.end(), ::isdigit);
        if (spec == "demo" && !fs::is_regular_file(spec))  // a word of the Python CLIs (runtime/named.py), not a file
            throw deeplab::Error(deeplab::ErrorCode::io,
                                 "--source demo is a name of the Python CLI (deeplab-infer) only; here give the video "
                                 "file: demo/assets/demo.mp4");
        if (!camera && fs::is_directory(spec)) {
            for (const auto& e : fs::directory_iterator(spec))
                if (is_image(e.path())) images_.push_back(e.path());
            std::sort(images_.begin(), images_.end());
            if (images_.empty()) throw deeplab::Error(deeplab::ErrorCode::io, "no images found: " + spec);
        } else if (!camera && is_image(spec)) {
            if (!fs::exists(spec)) throw deeplab::Error(deeplab::ErrorCode::io, "source not found: " + spec);
            images_.push_back(spec);
        } else if (deeplab::is_gst_uri(spec) ||
                   (spec.rfind("rtsp://", 0) == 0 && cv::videoio_registry::hasBackend(cv::CAP_GSTREAMER))) {
            capture_ = open_gstreamer(spec);
            camera_ = true;  // read as it comes: no frame count, no seeking past damaged frames
        } else {
            const bool stream = spec.find("://") != std::string::npos;  // RTSP, HTTP: FFmpeg opens them
            if (!camera && !stream && !fs::exists(spec))
                throw deeplab::Error(deeplab::ErrorCode::io, "source not found: " + spec);
            capture_ = camera ? cv::VideoCapture(std::stoi(spec)) : cv::VideoCapture(spec, cv::CAP_FFMPEG);
            if (!capture_.isOpened()) throw deeplab::Error(deeplab::ErrorCode::io, "cannot open video " + spec);
            camera_ = camera;
            if (!camera) total_ = static_cast<long>(capture_.get(cv::CAP_PROP_FRAME_COUNT));
        }
    }

    bool is_video() const { return capture_.isOpened(); }

    std::optional<Frame> next() {
        const auto t0 = Clock::now();
        Frame f;
        if (capture_.isOpened()) {
            // As runtime/sources.py: step over undecodable frames (counted, named by their position in the file) and
            // stop at the container's frame count or after kMaxConsecutiveFailures unreadable frames.
            cv::Mat m;
            int failures = 0;
            while (!capture_.read(m) || m.empty()) {
                if ((total_ > 0 && index_ >= total_) || ++failures > kMaxConsecutiveFailures) return std::nullopt;
                ++index_;
                if (!camera_) capture_.set(cv::CAP_PROP_POS_FRAMES, static_cast<double>(index_));
            }
            skipped_ += failures;  // counted once a later frame decodes: a truncated tail is the end, not a skip
            char name[32];
            std::snprintf(name, sizeof name, "%06ld", index_++);
            f.name = name;
            f.image = to_bgr8(m);
        } else {
            while (index_ < static_cast<long>(images_.size())) {
                const fs::path& p = images_[static_cast<size_t>(index_++)];
                cv::Mat m = cv::imread(p.string(), cv::IMREAD_UNCHANGED);
                try {
                    if (m.empty()) throw deeplab::Error(deeplab::ErrorCode::io, "corrupt or unsupported");
                    f.image = to_bgr8(m);
                } catch (const deeplab::Error& e) {
                    std::fprintf(stderr, "warning: cannot decode image %s: %s (skipped)\n", p.c_str(), e.what());
                    ++skipped_;
                    continue;
                }
                f.name = p.stem().string();
                break;
            }
            if (f.image.empty()) return std::nullopt;
        }
        f.decode_ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
        return f;
    }
    long skipped() const { return skipped_; }

  private:
    static constexpr int kMaxConsecutiveFailures = 25;
    cv::VideoCapture capture_;
    bool camera_ = false;
    std::vector<fs::path> images_;
    long index_ = 0, skipped_ = 0, total_ = 0;
};

/// Per-stage latency samples and their percentiles.
class Stats {
  public:
    void add(const std::string& stage, double ms) {
        if (samples_.find(stage) == samples_.end()) order_.push_back(stage);
        samples_[stage].push_back(ms);
    }
    void print(double wall_s, long frames) const {
        std::printf("\n%-12s %9s %9s %9s %9s\n", "stage (ms)", "mean", "p50", "p90", "p99");
        for (const auto& stage : order_) {
            std::vector<double> v = samples_.at(stage);
            std::sort(v.begin(), v.end());
            double sum = 0;
            for (double x : v) sum += x;
            auto pct = [&](double q) {  // linear interpolation, as numpy.percentile
                const double pos = q * (v.size() - 1);
                const size_t lo = static_cast<size_t>(pos);
                const size_t hi = std::min(lo + 1, v.size() - 1);
                return v[lo] + (v[hi] - v[lo]) * (pos - lo);
            };
            std::printf("%-12s %9.2f %9.2f %9.2f %9.2f\n", stage.c_str(), sum / v.size(), pct(0.5), pct(0.9),
                        pct(0.99));
        }
        std::printf("%ld frames in %.2f s: %.2f fps\n", frames, wall_s, wall_s > 0 ? frames / wall_s : 0.0);
    }

  private:
    std::vector<std::string> order_;
    std::map<std::string, std::vector<double>> samples_;
};

int run(const Args& args) {
    deeplab::SegmenterOptions options;
    options.crf = args.crf;
    options.crf_preset = args.crf_preset;
    options.crf_iterations = args.crf_iters;
    options.crf_scale = args.crf_scale;
    options.threads = args.threads;
    options.warm_start = args.warm_start;
    Source source(args.source);
    options.video = source.is_video();  // images keep the full CRF

    NpyLogits* npy = nullptr;
    std::unique_ptr<deeplab::Segmenter> segmenter;
    if (!args.engine.empty()) {
        segmenter =
            std::make_unique<deeplab::Segmenter>(deeplab::Segmenter::from_engine(args.engine, options, args.device));
    } else {
        const std::string meta_path = args.meta.empty() ? args.logits + "/meta.json" : args.meta;
        auto provider = std::make_unique<NpyLogits>(args.logits);
        npy = provider.get();
        segmenter = std::make_unique<deeplab::Segmenter>(deeplab::ModelMeta::from_json(read_text(meta_path)),
                                                         std::move(provider), options);
    }
    if (!args.masks.empty()) fs::create_directories(args.masks);
    const example::Palette palette = example::voc_palette();

    Stats stats;
    std::vector<std::uint8_t> labels;
    long frames = 0;
    const auto start = Clock::now();
    while (args.max_frames < 0 || frames < args.max_frames) {
        std::optional<Frame> frame = source.next();
        if (!frame) break;
        if (npy) npy->set_frame(frame->name);
        const cv::Mat& im = frame->image;
        segmenter->segment(deeplab::ImageView{im.data, im.rows, im.cols, im.step[0]}, labels);
        const deeplab::StageTimes& t = segmenter->last_times();
        const auto w0 = Clock::now();
        if (!args.masks.empty())
            example::write_palette_png(args.masks + "/" + frame->name + ".png", labels.data(), im.rows, im.cols,
                                       palette);
        const double write_ms = std::chrono::duration<double, std::milli>(Clock::now() - w0).count();
        stats.add("decode", frame->decode_ms);
        stats.add("preprocess", t.preprocess_ms);
        stats.add(npy ? "load logits" : "infer", t.infer_ms);
        stats.add("upsample", t.upsample_ms);
        if (args.crf) stats.add("crf", t.crf_ms);
        stats.add("write", write_ms);
        stats.add("end-to-end", frame->decode_ms + t.total_ms + write_ms);
        if (args.verbose)
            std::printf("frame %s: %dx%d, %.1f ms (crf %.1f ms)\n", frame->name.c_str(), im.cols, im.rows, t.total_ms,
                        t.crf_ms);
        ++frames;
    }
    const double wall = std::chrono::duration<double>(Clock::now() - start).count();
    if (frames == 0) {
        std::fprintf(stderr, "error: no frame could be read from %s\n", args.source.c_str());
        return 1;
    }
    stats.print(wall, frames);
    if (source.skipped()) std::printf("%ld undecodable input(s) skipped\n", source.skipped());
    if (!args.masks.empty()) std::printf("masks: %s\n", args.masks.c_str());
    return 0;
}

/// Damaged or unreadable inputs make FFmpeg and OpenCV print their own lines (`moov atom not found`, `GStreamer
/// warning`) before this program's one-line error: quiet them, as runtime/infer.py does, unless --verbose or the
/// user's environment asks otherwise.
void quiet_opencv_logs() {
    if (std::getenv("OPENCV_LOG_LEVEL") == nullptr)
        cv::utils::logging::setLogLevel(cv::utils::logging::LOG_LEVEL_SILENT);
    setenv("OPENCV_FFMPEG_LOGLEVEL", "-8", 0);  // read when the FFmpeg backend first opens a file
}

}  // namespace

int main(int argc, char** argv) {
    const Args args = parse_args(argc, argv);
    if (!args.verbose) quiet_opencv_logs();
    try {
        return run(args);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return 1;
    }
}
