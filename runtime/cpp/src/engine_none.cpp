// open_engine for builds without TensorRT: the sidecar is still read and checked, so a user learns what is wrong with
// the engine file before learning that this build cannot run it.
#include <fstream>

#include "deeplab/error.hpp"
#include "engine_provider.hpp"

namespace deeplab {

OpenedEngine open_engine(const std::string& engine_path, int /*device*/) {
    if (!std::ifstream(engine_path, std::ios::binary))
        throw Error(ErrorCode::io, "cannot read engine " + engine_path + ": no such file or not readable");
    read_sidecar(engine_path);  // throws on a missing or corrupt sidecar
    throw Error(ErrorCode::unsupported,
                "this build of deeplab_runtime has no TensorRT: reconfigure with TensorRT installed (or "
                "-DTENSORRT_ROOT=DIR) to run " +
                    engine_path);
}

}  // namespace deeplab
