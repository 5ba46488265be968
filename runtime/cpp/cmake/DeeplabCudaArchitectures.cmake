# deeplab_default_cuda_architectures(<nvcc version> <out var>): the CUDA architectures compiled when the user sets
# none (-DCMAKE_CUDA_ARCHITECTURES / $CUDAARCHS override it), by what that nvcc supports (docs/cpp.md §4):
# Jetson Xavier sm_72 (JetPack 5), T4 sm_75, A100 sm_80, A10/A40 sm_86, Orin sm_87, L4/L40 sm_89 and H100/H200 sm_90
# from CUDA 11.8, B200 sm_100 from 12.8, Thor sm_101 with CUDA 12.8/12.9 and sm_110 from CUDA 13 (which renamed it).
# CUDA 13 dropped sm_72 (its oldest target is sm_75). The newest architecture is also embedded as PTX, so GPUs newer
# than the list JIT it; a GPU older than the list has no kernel and the runtime upsamples on the CPU instead.
function(deeplab_default_cuda_architectures version out)
  if(version VERSION_LESS 11.8)      # JetPack 5 (CUDA 11.4): no Ada/Hopper
    set(archs 72-real 75-real 80-real 86-real 87)
  elseif(version VERSION_LESS 12.8)  # JetPack 6 (CUDA 12.2/12.6), servers
    set(archs 72-real 75-real 80-real 86-real 87-real 89-real 90)
  elseif(version VERSION_LESS 13.0)  # CUDA 12.8/12.9: Blackwell, Thor as sm_101
    set(archs 72-real 75-real 80-real 86-real 87-real 89-real 90-real 100-real 101)
  else()                             # CUDA 13 (JetPack 7): no sm_72, Thor as sm_110
    set(archs 75-real 80-real 86-real 87-real 89-real 90-real 100-real 110)
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
