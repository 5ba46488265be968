// The one builder of GStreamer pipeline strings (see deeplab/gst_pipeline.hpp).
#include "deeplab/gst_pipeline.hpp"

#include <algorithm>
#include <cctype>
#include <map>
#include <stdexcept>
#include <utility>

namespace deeplab {
namespace {

using Options = std::vector<std::pair<std::string, std::string>>;

// Which package brings an element, for the error message when it is missing.
const std::map<std::string, std::string>& packages() {
    static const std::map<std::string, std::string> m = {
        {"nvarguscamerasrc", "JetPack's GStreamer plugins (nvidia-l4t-gstreamer)"},
        {"nvvidconv", "JetPack's GStreamer plugins (nvidia-l4t-gstreamer)"},
        {"nvv4l2decoder", "JetPack's GStreamer plugins (nvidia-l4t-gstreamer)"},
        {"v4l2src", "gstreamer1.0-plugins-good"},
        {"rtspsrc", "gstreamer1.0-plugins-good"},
        {"rtph264depay", "gstreamer1.0-plugins-good"},
        {"rtph265depay", "gstreamer1.0-plugins-good"},
        {"jpegdec", "gstreamer1.0-plugins-good"},
        {"h264parse", "gstreamer1.0-plugins-bad"},
        {"h265parse", "gstreamer1.0-plugins-bad"},
        {"avdec_h264", "gstreamer1.0-libav"},
        {"avdec_h265", "gstreamer1.0-libav"},
        {"filesrc", "gstreamer1.0 (libgstreamer1.0-0)"},
        {"decodebin", "gstreamer1.0-plugins-base"},
        {"videoconvert", "gstreamer1.0-plugins-base"},
        {"appsink", "gstreamer1.0-plugins-base"},
    };
    return m;
}

[[noreturn]] void fail(const std::string& uri, const std::string& message) {
    throw std::invalid_argument(uri + ": " + message);
}

void require(const std::string& uri, const std::set<std::string>& available, std::initializer_list<const char*> names,
             const std::string& what) {
    for (const char* name : names)
        if (!available.count(name)) {
            const auto p = packages().find(name);
            fail(uri, what + " needs the GStreamer element " + name +
                          (p != packages().end() ? ", from " + p->second : std::string()) + ", which is not installed");
        }
}

bool starts_with(const std::string& s, const char* prefix) {
    return s.rfind(prefix, 0) == 0;
}

bool all_digits(const std::string& s) {
    return !s.empty() && std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isdigit(c); });
}

bool is_dev_video(const std::string& path) {
    return starts_with(path, "/dev/video") && all_digits(path.substr(10));
}

/// Splits "base?k=v&k2=v2" into the base and its options (in order).
std::pair<std::string, Options> split_query(const std::string& text) {
    const auto q = text.find('?');
    if (q == std::string::npos) return {text, {}};
    Options options;
    std::string rest = text.substr(q + 1);
    size_t start = 0;
    while (start <= rest.size()) {
        size_t end = rest.find('&', start);
        if (end == std::string::npos) end = rest.size();
        const std::string item = rest.substr(start, end - start);
        if (!item.empty()) {
            const auto eq = item.find('=');
            options.emplace_back(item.substr(0, eq), eq == std::string::npos ? "" : item.substr(eq + 1));
        }
        start = end + 1;
    }
    return {text.substr(0, q), options};
}

int integer(const std::string& uri, const std::string& key, const std::string& value, int min, int max) {
    if (!all_digits(value) || value.size() > 6 || std::stoi(value) < min || std::stoi(value) > max)
        fail(uri, "option " + key + " must be an integer in " + std::to_string(min) + ".." + std::to_string(max) +
                      ", got '" + value + "'");
    return std::stoi(value);
}

/// gst-launch quoting: the value in double quotes, with backslashes and quotes escaped.
std::string quoted(const std::string& s) {
    std::string out = "\"";
    for (char c : s) {
        if (c == '"' || c == '\\') out += '\\';
        out += c;
    }
    return out + "\"";
}

std::string appsink(bool live) {
    return std::string("appsink name=") + kGstSinkName +
           (live ? " drop=true max-buffers=1 sync=false" : " max-buffers=2 sync=false");
}

const char* kToBgr = "videoconvert ! video/x-raw,format=BGR ! ";

GstPipeline csi(const std::string& uri, const std::set<std::string>& available) {
    auto [base, options] = split_query(uri.substr(6));
    if (!all_digits(base)) fail(uri, "expected csi://N with N the sensor id, e.g. csi://0");
    int width = 1280, height = 720, framerate = 30, flip = 0;
    for (const auto& [key, value] : options) {
        if (key == "width")
            width = integer(uri, key, value, 1, 8192);
        else if (key == "height")
            height = integer(uri, key, value, 1, 8192);
        else if (key == "framerate")
            framerate = integer(uri, key, value, 1, 1000);
        else if (key == "flip")
            flip = integer(uri, key, value, 0, 7);
        else
            fail(uri, "unknown option '" + key + "' (width, height, framerate, flip)");
    }
    require(uri, available, {"nvarguscamerasrc", "nvvidconv", "videoconvert", "appsink"}, "a CSI camera");
    GstPipeline p{"csi", "", true, true};
    p.pipeline = "nvarguscamerasrc sensor-id=" + base + " ! video/x-raw(memory:NVMM),width=" + std::to_string(width) +
                 ",height=" + std::to_string(height) + ",framerate=" + std::to_string(framerate) +
                 "/1,format=NV12 ! nvvidconv flip-method=" + std::to_string(flip) + " ! video/x-raw,format=BGRx ! " +
                 kToBgr + appsink(true);
    return p;
}

GstPipeline v4l2(const std::string& uri, const std::string& rest, const std::set<std::string>& available) {
    auto [device, options] = split_query(rest);
    if (!is_dev_video(device)) fail(uri, "expected a V4L2 device such as v4l2:///dev/video0");
    std::string caps, format = "raw";
    for (const auto& [key, value] : options) {
        if (key == "width" || key == "height")
            caps += "," + key + "=" + std::to_string(integer(uri, key, value, 1, 8192));
        else if (key == "framerate")
            caps += ",framerate=" + std::to_string(integer(uri, key, value, 1, 1000)) + "/1";
        else if (key == "format" && (value == "raw" || value == "mjpg"))
            format = value;
        else if (key == "format")
            fail(uri, "option format must be raw or mjpg, got '" + value + "'");
        else
            fail(uri, "unknown option '" + key + "' (width, height, framerate, format)");
    }
    const bool mjpg = format == "mjpg";
    require(uri, available, {"v4l2src", "videoconvert", "appsink"}, "a V4L2 camera");
    if (mjpg) require(uri, available, {"jpegdec"}, "an MJPEG camera");
    GstPipeline p{"v4l2", "", true, true};
    p.pipeline = "v4l2src device=" + quoted(device) + " ! " + (mjpg ? "image/jpeg" : "video/x-raw") + caps + " ! " +
                 (mjpg ? "jpegdec ! " : "") + kToBgr + appsink(true);
    return p;
}

/// Decoder and conversion to BGR for one codec, best available first.
std::string decode_to_bgr(const std::string& uri, const std::string& codec, const std::set<std::string>& available) {
    if (available.count("nvv4l2decoder") && available.count("nvvidconv"))
        return "nvv4l2decoder ! nvvidconv ! video/x-raw,format=BGRx ! " + std::string(kToBgr);
    const std::string nv = "nv" + codec + "dec", av = "avdec_" + codec;
    if (available.count(nv)) return nv + " ! " + kToBgr;
    require(uri, available, {av.c_str()}, "decoding " + codec);
    return av + " ! " + kToBgr;
}

GstPipeline rtsp(const std::string& uri, const std::set<std::string>& available) {
    auto [base, options] = split_query(uri);
    int latency = 100;
    std::string transport = "tcp", codec = "h264", query;
    for (const auto& [key, value] : options) {
        if (key == "latency")
            latency = integer(uri, key, value, 0, 60000);
        else if (key == "transport" && (value == "tcp" || value == "udp"))
            transport = value;
        else if (key == "transport")
            fail(uri, "option transport must be tcp or udp, got '" + value + "'");
        else if (key == "codec" && (value == "h264" || value == "h265"))
            codec = value;
        else if (key == "codec")
            fail(uri, "option codec must be h264 or h265, got '" + value + "'");
        else
            query += (query.empty() ? "?" : "&") + key + (value.empty() ? "" : "=" + value);  // the camera's own
    }
    const std::string depay = "rtp" + codec + "depay", parse = codec + "parse";
    require(uri, available, {"rtspsrc", depay.c_str(), parse.c_str(), "videoconvert", "appsink"}, "RTSP");
    GstPipeline p{"rtsp", "", true, true};
    p.pipeline = "rtspsrc location=" + quoted(base + query) + " latency=" + std::to_string(latency) +
                 " protocols=" + transport + " ! " + depay + " ! " + parse + " ! " +
                 decode_to_bgr(uri, codec, available) + appsink(true);
    return p;
}

bool has_appsink(const std::string& pipeline) {
    for (size_t at = pipeline.find("appsink"); at != std::string::npos; at = pipeline.find("appsink", at + 1)) {
        const bool left =
            at == 0 || !(std::isalnum(static_cast<unsigned char>(pipeline[at - 1])) || pipeline[at - 1] == '_');
        const size_t end = at + 7;
        const bool right = end == pipeline.size() || !(std::isalnum(static_cast<unsigned char>(pipeline[end])) ||
                                                       pipeline[end] == '_' || pipeline[end] == '.');
        if (left && right) return true;
    }
    return false;
}

GstPipeline custom(const std::string& uri, const std::set<std::string>& available) {
    std::string body = uri.substr(4);
    body.erase(0, body.find_first_not_of(" \t"));
    while (!body.empty() && (std::isspace(static_cast<unsigned char>(body.back())) || body.back() == '!'))
        body.pop_back();
    if (body.empty()) fail(uri, "expected gst:PIPELINE, e.g. gst:videotestsrc ! videoconvert");
    GstPipeline p{"gst", body, false, false};
    if (!has_appsink(body)) {
        require(uri, available, {"videoconvert", "appsink"}, "a gst: pipeline");
        p.pipeline = body + " ! " + kToBgr + appsink(false);
        p.own_sink = true;
    }
    return p;
}

GstPipeline file(const std::string& uri, const std::set<std::string>& available) {
    const std::string path = uri.substr(5);
    if (path.empty()) fail(uri, "expected file:PATH");
    require(uri, available, {"filesrc", "decodebin", "videoconvert", "appsink"}, "a video file");
    return {"file", "filesrc location=" + quoted(path) + " ! decodebin ! " + kToBgr + appsink(false), false, true};
}

}  // namespace

bool is_gst_uri(const std::string& uri) {
    return starts_with(uri, "csi://") || starts_with(uri, "v4l2://") || starts_with(uri, "gst:") ||
           is_dev_video(split_query(uri).first);
}

bool is_live_uri(const std::string& uri) {
    return starts_with(uri, "csi://") || starts_with(uri, "v4l2://") || starts_with(uri, "rtsp://") ||
           is_dev_video(split_query(uri).first);
}

const std::vector<std::string>& gst_elements() {
    static const std::vector<std::string> names = [] {
        std::vector<std::string> v;
        for (const auto& [name, package] : packages()) v.push_back(name);
        v.insert(v.end(), {"nvh264dec", "nvh265dec"});
        return v;
    }();
    return names;
}

GstPipeline gst_pipeline(const std::string& uri, const std::set<std::string>& available) {
    if (starts_with(uri, "csi://")) return csi(uri, available);
    if (starts_with(uri, "v4l2://")) return v4l2(uri, uri.substr(7), available);
    if (is_dev_video(split_query(uri).first)) return v4l2(uri, uri, available);
    if (starts_with(uri, "rtsp://")) return rtsp(uri, available);
    if (starts_with(uri, "gst:")) return custom(uri, available);
    if (starts_with(uri, "file:")) return file(uri, available);
    fail(uri, "not a GStreamer source (csi://N, v4l2:///dev/videoN, /dev/videoN, rtsp://..., gst:PIPELINE)");
}

}  // namespace deeplab
