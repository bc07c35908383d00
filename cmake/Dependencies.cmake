# Third-party dependencies, all from Debian packages (see README).
find_package(fmt REQUIRED)
find_package(CLI11 REQUIRED)
find_package(nlohmann_json REQUIRED)
find_package(hwy REQUIRED)
find_package(TBB REQUIRED)
set(BLA_VENDOR ${TESSERA_BLAS_VENDOR})
find_package(BLAS REQUIRED)
find_path(TESSERA_CBLAS_INCLUDE cblas.h PATH_SUFFIXES openblas x86_64-linux-gnu/openblas-pthread REQUIRED)

# oneDNN: when found (TESSERA_ONEDNN=AUTO|ON) src/backends/cpu/onednn is compiled in and serves
# float GEMM; otherwise its stub reports "not built" (docs/design/onednn.md). Debian's build runs
# on OpenMP, whose per-thread setting the backend sets around each call, so libgomp is linked
# too (no -fopenmp: Tessera's own code has no OpenMP pragmas).
set(TESSERA_ONEDNN_FOUND OFF)
if(NOT TESSERA_ONEDNN STREQUAL "OFF")
  find_package(dnnl CONFIG QUIET)
  find_package(OpenMP QUIET COMPONENTS CXX)
  if(dnnl_FOUND AND OpenMP_CXX_FOUND)
    set(TESSERA_ONEDNN_FOUND ON)
    message(STATUS "Tessera: oneDNN: built (${dnnl_VERSION})")
  elseif(TESSERA_ONEDNN STREQUAL "ON")
    message(FATAL_ERROR "TESSERA_ONEDNN=ON but oneDNN (libdnnl-dev) or OpenMP was not found")
  else()
    message(STATUS "Tessera: oneDNN: stub (libdnnl-dev not found)")
  endif()
endif()

# CUDA: when the toolkit is found (TESSERA_CUDA=AUTO|ON) the backend in src/backends/cuda is
# compiled into libtessera; otherwise its stub answers every CUDA request with NotBuiltError
# (see docs/design/cuda.md).
set(TESSERA_CUDA_FOUND OFF)
if(NOT TESSERA_CUDA STREQUAL "OFF")
  include(CheckLanguage)
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    set(TESSERA_CUDA_FOUND ON)
  elseif(TESSERA_CUDA STREQUAL "ON")
    message(FATAL_ERROR "TESSERA_CUDA=ON but no CUDA compiler was found")
  endif()
endif()
if(TESSERA_CUDA_FOUND)
  # SASS for Hopper (H100/H200) and PTX for the oldest architecture nvcc still targets (sm_75
  # since CUDA 13; the driver JIT-compiles it for anything newer than the SASS covers).
  if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
    set(CMAKE_CUDA_ARCHITECTURES "90-real;75-virtual")
  endif()
  if(CCACHE_PROGRAM)
    set(CMAKE_CUDA_COMPILER_LAUNCHER ${CCACHE_PROGRAM})
  endif()
  enable_language(CUDA)
  set(CMAKE_CUDA_STANDARD 17)
  set(CMAKE_CUDA_STANDARD_REQUIRED ON)
  find_package(CUDAToolkit REQUIRED)
  message(STATUS "Tessera: CUDA backend: built (CUDA ${CUDAToolkit_VERSION}, "
                 "architectures ${CMAKE_CUDA_ARCHITECTURES})")
  # cuDNN (the convolutions' CUDA kernels) when its header and library sit with the toolkit,
  # under CUDNN_ROOT or on the default paths; without it the conv primitives have no CUDA kernel.
  find_path(TESSERA_CUDNN_INCLUDE_DIR cudnn.h HINTS ${CUDAToolkit_INCLUDE_DIRS} ENV CUDNN_ROOT
            PATH_SUFFIXES include)
  find_library(TESSERA_CUDNN_LIBRARY cudnn HINTS ${CUDAToolkit_LIBRARY_DIR}
               ${CUDAToolkit_LIBRARY_ROOT} ENV CUDNN_ROOT PATH_SUFFIXES lib lib64)
  if(TESSERA_CUDNN_INCLUDE_DIR AND TESSERA_CUDNN_LIBRARY)
    set(TESSERA_CUDNN_FOUND ON)
    message(STATUS "Tessera: cuDNN: ${TESSERA_CUDNN_LIBRARY}")
  else()
    set(TESSERA_CUDNN_FOUND OFF)
    message(STATUS "Tessera: cuDNN: not found (no CUDA convolutions)")
  endif()
else()
  message(STATUS "Tessera: CUDA backend: stub (not built with CUDA)")
endif()
