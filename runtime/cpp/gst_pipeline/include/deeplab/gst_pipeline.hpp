// deeplab/gst_pipeline.hpp: GStreamer pipelines for camera and stream URIs, as one pure function of the URI and of
// the GStreamer elements present. The Python runtime (runtime/gst_source.py, through runtime._gst_pipeline) and the
// C++ example (examples/cpp/segment.cpp, through OpenCV's GStreamer backend) open sources with the same strings.
//
//   csi://N[?width=W&height=H&framerate=F&flip=0..7]      nvarguscamerasrc (Jetson CSI cameras)
//   v4l2:///dev/videoN[?width=W&height=H&framerate=F&format=raw|mjpg], or a bare /dev/videoN   v4l2src (USB cameras)
//   rtsp://HOST[:PORT]/PATH[?latency=MS&transport=tcp|udp&codec=h264|h265]   rtspsrc and the best H.264/H.265 decoder
//   gst:PIPELINE                                          anything else; an appsink is appended when it has none
//   file:PATH                                             a video file through decodebin (--decoder gstreamer)
//
// Decoders, best first: nvv4l2decoder (Jetson) → nvh264dec/nvh265dec (desktop NVIDIA plugins) → avdec_h264/avdec_h265
// (gstreamer1.0-libav). Frames reach the appsink (named kGstSinkName) as packed BGR.
#pragma once

#include <set>
#include <string>
#include <vector>

namespace deeplab {

// OpenCV's GStreamer backend finds the appsink by a name containing "appsink".
inline constexpr const char* kGstSinkName = "deeplab_appsink";

struct GstPipeline {
    std::string kind;      // "csi", "v4l2", "rtsp", "gst" or "file"
    std::string pipeline;  // gst-launch-1.0 syntax, ending in an appsink
    bool live = false;     // cameras and RTSP: the appsink keeps the latest frame only (drop=true max-buffers=1)
    bool own_sink = true;  // the appsink is ours (false: a gst: pipeline that brought its own)
};

/// Whether `uri` names a source that only GStreamer opens here: csi://, v4l2://, /dev/videoN or gst:.
bool is_gst_uri(const std::string& uri);

/// Whether `uri` is a camera or RTSP stream (live), as opposed to a gst: pipeline or a file.
bool is_live_uri(const std::string& uri);

/// The element names gst_pipeline() may ask about: query the GStreamer registry for these only.
const std::vector<std::string>& gst_elements();

/// The pipeline for `uri` (one of the forms above, or "file:PATH"), given the names of the available GStreamer
/// elements. Throws std::invalid_argument with a one-line message (bad option, missing element and its package).
GstPipeline gst_pipeline(const std::string& uri, const std::set<std::string>& available);

}  // namespace deeplab
