# deeplab_default_cuda_architectures(<nvcc version> <out var>): the CUDA architectures compiled when the user sets
# none (-DCMAKE_CUDA_ARCHITECTURES / $CUDAARCHS override it). Servers: Ampere sm_80/86, Ada sm_89, Hopper sm_90;
# Jetson: Orin sm_87, Thor sm_110 (CUDA 13 renamed it from sm_101, which CUDA 12.8/12.9 use).
# The last architecture is also embedded as PTX so newer GPUs can JIT it.
function(deeplab_default_cuda_architectures version out)
  if(version VERSION_LESS 11.8)      # JetPack 5 (CUDA 11.4): no Ada/Hopper
    set(archs 80-real 86-real 87)
  elseif(version VERSION_LESS 12.8)  # JetPack 6 (CUDA 12.2/12.6), servers
    set(archs 80-real 86-real 87-real 89-real 90)
  elseif(version VERSION_LESS 13.0)  # CUDA 12.8/12.9: Thor as sm_101
    set(archs 80-real 86-real 87-real 89-real 90-real 101)
  else()                             # CUDA 13 (JetPack 7): Thor as sm_110
    set(archs 80-real 86-real 87-real 89-real 90-real 110)
  endif()
  set(${out} "${archs}" PARENT_SCOPE)
endfunction()

# Enable CUDA and pick the default architectures for this nvcc unless the user chose some.
macro(deeplab_enable_cuda)
  if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES AND NOT DEFINED ENV{CUDAARCHS})
    set(_deeplab_pick_archs ON)
  endif()
  enable_language(CUDA)
  if(_deeplab_pick_archs)
    deeplab_default_cuda_architectures(${CMAKE_CUDA_COMPILER_VERSION} _deeplab_archs)
    set(CMAKE_CUDA_ARCHITECTURES "${_deeplab_archs}" CACHE STRING "CUDA architectures to compile" FORCE)
  endif()
  message(STATUS "CUDA ${CMAKE_CUDA_COMPILER_VERSION}: architectures ${CMAKE_CUDA_ARCHITECTURES}")
endmacro()
