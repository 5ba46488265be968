# CTest (cmake -P): the default CUDA architectures per nvcc version.
include(${CMAKE_CURRENT_LIST_DIR}/../cmake/DeeplabCudaArchitectures.cmake)
foreach(case "11.4.315|80-real;86-real;87" "12.2.140|80-real;86-real;87-real;89-real;90"
             "12.6.68|80-real;86-real;87-real;89-real;90" "12.8.93|80-real;86-real;87-real;89-real;90-real;101"
             "13.0.88|80-real;86-real;87-real;89-real;90-real;110")
  string(REPLACE "|" ";" parts "${case}")
  list(GET parts 0 version)
  list(SUBLIST parts 1 -1 expected)
  deeplab_default_cuda_architectures(${version} got)
  if(NOT got STREQUAL expected)
    message(FATAL_ERROR "CUDA ${version}: got '${got}', expected '${expected}'")
  endif()
endforeach()
message("default CUDA architectures OK")
