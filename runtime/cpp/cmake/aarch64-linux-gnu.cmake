# Cross-compiling for aarch64 Linux (Jetson's CPU side) from x86-64 with Debian's g++-aarch64-linux-gnu; tests run
# under qemu-user (Debian's qemu-user) through CTest's emulator:
#   cmake -S . -B build/aarch64 -DCMAKE_TOOLCHAIN_FILE=runtime/cpp/cmake/aarch64-linux-gnu.cmake
# (scripts/ctest.sh --aarch64). Libraries and headers are searched only in the target's root: OpenCV, TensorRT and
# CUDA are not there, so the example and the TensorRT runner are left out.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(DEEPLAB_AARCH64_TRIPLE aarch64-linux-gnu)
set(CMAKE_C_COMPILER ${DEEPLAB_AARCH64_TRIPLE}-gcc)
set(CMAKE_CXX_COMPILER ${DEEPLAB_AARCH64_TRIPLE}-g++)
set(DEEPLAB_AARCH64_ROOT /usr/${DEEPLAB_AARCH64_TRIPLE} CACHE PATH "the target's root (libc, libstdc++)")
set(CMAKE_FIND_ROOT_PATH ${DEEPLAB_AARCH64_ROOT})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
find_program(DEEPLAB_QEMU_AARCH64 qemu-aarch64)
if(DEEPLAB_QEMU_AARCH64)
  set(CMAKE_CROSSCOMPILING_EMULATOR ${DEEPLAB_QEMU_AARCH64} -L ${DEEPLAB_AARCH64_ROOT})
endif()
