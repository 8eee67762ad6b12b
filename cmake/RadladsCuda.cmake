# The CUDA backend is optional. RADLADS_CUDA=AUTO builds it when nvcc is found; ON requires it;
# OFF skips it. Everything else builds and passes its tests without it.
include_guard(GLOBAL)
include(CheckLanguage)

set(RADLADS_HAVE_CUDA OFF)
if(NOT RADLADS_CUDA STREQUAL "OFF")
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
      # Explicit list, never `native` (it fails on machines without a GPU):
      #   80 = A100 (Ampere), 90 = H100/H200 (Hopper).
      set(CMAKE_CUDA_ARCHITECTURES 80 90)
    endif()
    # Link only the shared cudart (the default would link cudart_static and libcudart.so).
    set(CMAKE_CUDA_RUNTIME_LIBRARY Shared)
    enable_language(CUDA)
    # CMake 3.25 knows nvcc dialects only up to C++17; teach it C++20.
    set(CMAKE_CUDA20_STANDARD_COMPILE_OPTION "-std=c++20")
    set(CMAKE_CUDA20_EXTENSION_COMPILE_OPTION "-std=c++20")
    set(CMAKE_CUDA_STANDARD 20)
    set(CMAKE_CUDA_STANDARD_REQUIRED ON)
    find_package(CUDAToolkit REQUIRED)
    find_library(NCCL_LIBRARY nccl HINTS ${CUDAToolkit_LIBRARY_DIR} REQUIRED)
    find_path(NCCL_INCLUDE_DIR nccl.h HINTS ${CUDAToolkit_INCLUDE_DIRS} REQUIRED)
    add_library(radlads::nccl UNKNOWN IMPORTED)
    set_target_properties(radlads::nccl PROPERTIES IMPORTED_LOCATION "${NCCL_LIBRARY}"
        INTERFACE_INCLUDE_DIRECTORIES "${NCCL_INCLUDE_DIR}")
    find_library(CUDNN_LIBRARY cudnn HINTS ${CUDAToolkit_LIBRARY_DIR} REQUIRED)
    find_path(CUDNN_INCLUDE_DIR cudnn.h HINTS ${CUDAToolkit_INCLUDE_DIRS} REQUIRED)
    add_library(radlads::cudnn UNKNOWN IMPORTED)
    set_target_properties(radlads::cudnn PROPERTIES IMPORTED_LOCATION "${CUDNN_LIBRARY}"
        INTERFACE_INCLUDE_DIRECTORIES "${CUDNN_INCLUDE_DIR}")
    set(RADLADS_HAVE_CUDA ON)
    message(STATUS "radlads: CUDA backend ON (architectures ${CMAKE_CUDA_ARCHITECTURES})")
  elseif(RADLADS_CUDA STREQUAL "ON")
    message(FATAL_ERROR "RADLADS_CUDA=ON but no CUDA compiler was found (is nvcc on PATH?)")
  else()
    message(STATUS "radlads: no CUDA compiler found; building without the CUDA backend")
  endif()
else()
  message(STATUS "radlads: CUDA backend OFF (RADLADS_CUDA=OFF)")
endif()
