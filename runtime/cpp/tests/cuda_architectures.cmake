# CTest (cmake -P): the default CUDA architectures per nvcc version, and, where nvcc is given (-DNVCC=path), that the
# list for that nvcc's own version names only architectures it accepts (`nvcc --list-gpu-arch`).
include(${CMAKE_CURRENT_LIST_DIR}/../cmake/DeeplabCudaArchitectures.cmake)
foreach(case "11.4.315|72-real;75-real;80-real;86-real;87"
             "12.2.140|72-real;75-real;80-real;86-real;87-real;89-real;90"
             "12.6.68|72-real;75-real;80-real;86-real;87-real;89-real;90"
             "12.8.93|72-real;75-real;80-real;86-real;87-real;89-real;90-real;100-real;101"
             "13.0.88|75-real;80-real;86-real;87-real;89-real;90-real;100-real;110")
  string(REPLACE "|" ";" parts "${case}")
  list(GET parts 0 version)
  list(SUBLIST parts 1 -1 expected)
  deeplab_default_cuda_architectures(${version} got)
  if(NOT got STREQUAL expected)
    message(FATAL_ERROR "CUDA ${version}: got '${got}', expected '${expected}'")
  endif()
endforeach()

if(NVCC)
  execute_process(COMMAND ${NVCC} --version OUTPUT_VARIABLE banner RESULT_VARIABLE rc)
  string(REGEX MATCH "release ([0-9]+\\.[0-9]+)" _ "${banner}")
  set(version ${CMAKE_MATCH_1})
  execute_process(COMMAND ${NVCC} --list-gpu-arch OUTPUT_VARIABLE accepted RESULT_VARIABLE rc2)
  if(NOT rc EQUAL 0 OR NOT rc2 EQUAL 0 OR NOT version)
    message(FATAL_ERROR "cannot ask ${NVCC} for its version and architectures")
  endif()
  deeplab_default_cuda_architectures(${version} got)
  foreach(arch IN LISTS got)
    string(REGEX REPLACE "-real$" "" sm "${arch}")
    if(NOT accepted MATCHES "compute_${sm}\n")
      message(FATAL_ERROR "CUDA ${version}: default architecture ${arch} is not in `nvcc --list-gpu-arch`:\n${accepted}")
    endif()
  endforeach()
  message("CUDA ${version} (${NVCC}) accepts every default architecture: ${got}")
endif()
message("default CUDA architectures OK")
