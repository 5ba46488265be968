// open_engine with TensorRT (8.5 through 10.x/11.x): the name-based I/O API (setInputShape, setTensorAddress,
// enqueueV3), device buffers allocated once and grown only when a larger frame arrives.
// Compiled only when TensorRT's headers and libraries are found; CI compiles it against every supported release's
// headers (tests/runtime/test_tensorrt_headers.py).
#include <NvInferRuntime.h>
#include <NvInferVersion.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include "deeplab/error.hpp"
#include "engine_provider.hpp"

namespace deeplab {
namespace {

void check_cuda(cudaError_t rc, const char* what) {
    if (rc != cudaSuccess) throw Error(ErrorCode::engine, std::string(what) + " failed: " + cudaGetErrorString(rc));
}

/// TensorRT's logger. TensorRT keeps the first logger it is given for the whole process and ignores later ones, so
/// every runtime gets this one, which lives until the process ends. It keeps, per thread, the last error TensorRT
/// logged (TensorRT logs from the thread that called it), to explain a failed call.
class Logger final : public nvinfer1::ILogger {
  public:
    static Logger& instance() {
        static Logger* logger = new Logger;  // never destroyed: TensorRT may log while the process exits
        return *logger;
    }
    void log(Severity severity, const char* msg) noexcept override {
        if (severity > Severity::kERROR) return;
        try {
            last_error_ = msg;
        } catch (...) {
        }
    }
    /// The last error logged on this thread since clear().
    std::string last_error() const { return last_error_.empty() ? "no details from TensorRT" : last_error_; }
    void clear() { last_error_.clear(); }

  private:
    Logger() = default;
    static thread_local std::string last_error_;
};
thread_local std::string Logger::last_error_;

Platform running_platform(int device) {
    Platform p;
    p.tensorrt_version = tensorrt_version_string(getInferLibVersion());
    cudaDeviceProp props{};
    if (cudaGetDeviceProperties(&props, device) == cudaSuccess) {
        p.gpu_name = std::string(props.name);
        p.compute_capability = std::to_string(props.major) + "." + std::to_string(props.minor);
    }
    return p;
}

struct DeviceBuffer {
    void* ptr = nullptr;
    size_t bytes = 0;
    ~DeviceBuffer() {
        if (ptr) cudaFree(ptr);
    }
    void reserve(size_t n) {
        if (n <= bytes) return;
        if (ptr) cudaFree(ptr);
        ptr = nullptr;
        bytes = 0;
        check_cuda(cudaMalloc(&ptr, n), "cudaMalloc");
        bytes = n;
    }
};

class TensorRTProvider final : public LogitsProvider {
  public:
    TensorRTProvider(const std::string& path, const ModelMeta& meta, const EngineInfo& info, int device)
        : device_(device) {
        check_cuda(cudaSetDevice(device_), "cudaSetDevice");
        std::ifstream f(path, std::ios::binary);
        const std::vector<char> plan((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
        if (plan.empty()) throw Error(ErrorCode::engine, "engine " + path + " is empty");
        logger_.clear();
        runtime_.reset(nvinfer1::createInferRuntime(logger_));
        if (!runtime_) throw Error(ErrorCode::engine, "cannot create the TensorRT runtime: " + logger_.last_error());
#if NV_TENSORRT_MAJOR > 8 || (NV_TENSORRT_MAJOR == 8 && NV_TENSORRT_MINOR >= 6)
        if (info.version_compatible) runtime_->setEngineHostCodeAllowed(true);  // the plan embeds its lean runtime
#endif
        engine_.reset(runtime_->deserializeCudaEngine(plan.data(), plan.size()));
        if (!engine_)
            throw Error(ErrorCode::engine,
                        "engine " + path + " could not be deserialized (corrupt, or not a TensorRT " +
                            tensorrt_version_string(getInferLibVersion()) + " plan): " + logger_.last_error());
        context_.reset(engine_->createExecutionContext());
        if (!context_) throw Error(ErrorCode::engine, "cannot create an execution context: " + logger_.last_error());
        find_tensor(meta.input_name, nvinfer1::TensorIOMode::kINPUT, path);
        find_tensor(meta.output_name, nvinfer1::TensorIOMode::kOUTPUT, path);
        input_ = meta.input_name;
        output_ = meta.output_name;
        for (int i = 0; i < 3; ++i) profile_[i] = info.profile[static_cast<size_t>(i)];
        check_cuda(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreate");
    }

    std::pair<int, int> input_size(int height, int width) const override {
        return {std::max<int>(height, static_cast<int>(profile_[0][2])),
                std::max<int>(width, static_cast<int>(profile_[0][3]))};
    }

    ~TensorRTProvider() override {
        context_.reset();
        engine_.reset();
        runtime_.reset();
        if (stream_) cudaStreamDestroy(stream_);
        if (host_) cudaFreeHost(host_);
    }

    LogitsView infer(const float* input, int height, int width) override {
        check_cuda(cudaSetDevice(device_), "cudaSetDevice");
        logger_.clear();
        if (!context_->setInputShape(input_.c_str(), nvinfer1::Dims4{1, 3, height, width}))
            throw Error(ErrorCode::engine, "the engine rejects a 1x3x" + std::to_string(height) + "x" +
                                               std::to_string(width) + " input (its profile: min " + shape(0) +
                                               ", max " + shape(2) + "): " + logger_.last_error());
        const nvinfer1::Dims out = context_->getTensorShape(output_.c_str());
        if (out.nbDims != 4 || out.d[0] != 1 || out.d[2] < 1 || out.d[3] < 1)
            throw Error(ErrorCode::engine, "unexpected output shape of tensor '" + output_ + "'");
        const size_t in_bytes = size_t(3) * height * width * sizeof(float);
        const size_t out_elems = size_t(out.d[1]) * out.d[2] * out.d[3];
        in_dev_.reserve(in_bytes);
        out_dev_.reserve(out_elems * sizeof(float));
        if (out_elems > host_elems_) {
            if (host_) cudaFreeHost(host_);
            host_ = nullptr;
            host_elems_ = 0;
            check_cuda(cudaMallocHost(reinterpret_cast<void**>(&host_), out_elems * sizeof(float)), "cudaMallocHost");
            host_elems_ = out_elems;
        }
        check_cuda(cudaMemcpyAsync(in_dev_.ptr, input, in_bytes, cudaMemcpyHostToDevice, stream_), "cudaMemcpyAsync");
        if (!context_->setTensorAddress(input_.c_str(), in_dev_.ptr) ||
            !context_->setTensorAddress(output_.c_str(), out_dev_.ptr))
            throw Error(ErrorCode::engine, "setTensorAddress failed: " + logger_.last_error());
        if (!context_->enqueueV3(stream_)) throw Error(ErrorCode::engine, "enqueueV3 failed: " + logger_.last_error());
        check_cuda(cudaMemcpyAsync(host_, out_dev_.ptr, out_elems * sizeof(float), cudaMemcpyDeviceToHost, stream_),
                   "cudaMemcpyAsync");
        check_cuda(cudaStreamSynchronize(stream_), "cudaStreamSynchronize");
        LogitsView view{host_, static_cast<int>(out.d[1]), static_cast<int>(out.d[2]), static_cast<int>(out.d[3])};
        view.device_data = static_cast<const float*>(out_dev_.ptr);  // a CUDA build upsamples these on the GPU
        view.cuda_stream = stream_;
        return view;
    }

  private:
    void find_tensor(const std::string& name, nvinfer1::TensorIOMode mode, const std::string& path) {
        for (int32_t i = 0; i < engine_->getNbIOTensors(); ++i) {
            if (name != engine_->getIOTensorName(i)) continue;
            if (engine_->getTensorIOMode(name.c_str()) != mode) break;
            const std::string problem =
                tensorrt_io_type_problem(path, name, static_cast<int>(engine_->getTensorDataType(name.c_str())));
            if (!problem.empty()) throw Error(ErrorCode::engine, problem);
            return;
        }
        throw Error(ErrorCode::engine, "engine " + path + " has no " +
                                           (mode == nvinfer1::TensorIOMode::kINPUT ? "input" : "output") + " tensor '" +
                                           name + "' (its sidecar says so)");
    }
    std::string shape(int i) const {
        std::string s;
        for (int j = 0; j < 4; ++j) s += (j ? "x" : "") + std::to_string(profile_[i][static_cast<size_t>(j)]);
        return s;
    }

    int device_;
    Logger& logger_ = Logger::instance();
    std::unique_ptr<nvinfer1::IRuntime> runtime_;
    std::unique_ptr<nvinfer1::ICudaEngine> engine_;
    std::unique_ptr<nvinfer1::IExecutionContext> context_;
    std::string input_, output_;
    std::array<std::int64_t, 4> profile_[3]{};
    cudaStream_t stream_ = nullptr;
    DeviceBuffer in_dev_, out_dev_;
    float* host_ = nullptr;
    size_t host_elems_ = 0;
};

}  // namespace

OpenedEngine open_engine(const std::string& engine_path, int device) {
    if (!std::ifstream(engine_path, std::ios::binary))
        throw Error(ErrorCode::io, "cannot read engine " + engine_path + ": no such file or not readable");
    std::vector<std::string> warnings;  // it loads, but may run slower
    auto [meta, info] = check_engine(engine_path, running_platform(device), &warnings);
    for (const std::string& w : warnings) std::fprintf(stderr, "warning: %s\n", w.c_str());
    auto provider = std::make_unique<TensorRTProvider>(engine_path, meta, info, device);
    return {std::move(meta), std::move(provider)};
}

}  // namespace deeplab
