#!/usr/bin/env bash
# The C++ build and its CTest suite, as CI runs them (the Python package's tests are pytest's business).
#   scripts/ctest.sh              Release build in build/ctest, then ctest
#   scripts/ctest.sh --sanitize   ASan + UBSan build in build/sanitize, then ctest (tests that load the library into
#                                 an unsanitized process, Python or the installed-package consumer, are left out, and
#                                 so is opening a missing camera: OpenCV's camera backends leak on it, libusb included)
#   scripts/ctest.sh --cuda       also compiles the CUDA kernels with nvcc (-DWITH_CUDA=ON); without a GPU its GPU
#                                 test checks the CPU fallback
#   scripts/ctest.sh --aarch64    cross-builds for aarch64 (Jetson's CPU side: CRF, upsampling, runtime without
#                                 TensorRT/CUDA) in build/aarch64 and runs its CTest under qemu-aarch64 (needs Debian's
#                                 g++-aarch64-linux-gnu and qemu-user)
#   scripts/ctest.sh --all        the four above, one after another (what CI runs)
# Extra arguments after the mode go to ctest. Parallelism: $CMAKE_BUILD_PARALLEL_LEVEL (default 2).
set -euo pipefail
cd "$(dirname "$0")/.."
export CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-2}

mode=${1:-}
[[ $mode == --* ]] && shift || mode=""
case "$mode" in
  --all)
    for m in "" --cuda --sanitize --aarch64; do "$0" $m "$@"; done
    ;;
  "")
    build=build/ctest
    cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release
    cmake --build "$build"
    ctest --test-dir "$build" --output-on-failure "$@"
    ;;
  --cuda)
    build=build/ctest-cuda
    cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DWITH_CUDA=ON
    cmake --build "$build"
    ctest --test-dir "$build" --output-on-failure -E "^(runtime.python_parity|example.masks_match_python)$" "$@"
    ;;
  --sanitize)
    build=build/sanitize
    flags="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
    cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_FLAGS="$flags" -DCMAKE_CXX_FLAGS="$flags" \
      -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" -DCMAKE_SHARED_LINKER_FLAGS="-fsanitize=address,undefined"
    cmake --build "$build"
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1 \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
      ctest --test-dir "$build" --output-on-failure \
        -E "^(runtime.python_parity|example.masks_match_python|runtime.install_consumer|example.missing_camera)$" "$@"
    ;;
  --aarch64)
    for tool in aarch64-linux-gnu-g++ qemu-aarch64; do
      command -v "$tool" >/dev/null || { echo "error: $tool not found (apt-get install g++-aarch64-linux-gnu qemu-user)" >&2; exit 1; }
    done
    build=build/aarch64
    cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DCMAKE_TOOLCHAIN_FILE=runtime/cpp/cmake/aarch64-linux-gnu.cmake
    cmake --build "$build"
    # The Python parity test loads the library into this machine's (x86-64) Python; the consumer test is host-only.
    ctest --test-dir "$build" --output-on-failure -E "^(runtime.python_parity|runtime.install_consumer)$" "$@"
    ;;
  *)
    echo "usage: $0 [--sanitize|--cuda|--aarch64|--all] [ctest args...]" >&2
    exit 2
    ;;
esac
