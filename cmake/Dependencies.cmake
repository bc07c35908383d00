# Third-party dependencies, all from Debian packages (see README).
find_package(fmt REQUIRED)
find_package(CLI11 REQUIRED)
find_package(nlohmann_json REQUIRED)
find_package(hwy REQUIRED)
find_package(TBB REQUIRED)
set(BLA_VENDOR ${TESSERA_BLAS_VENDOR})
find_package(BLAS REQUIRED)
find_path(TESSERA_CBLAS_INCLUDE cblas.h PATH_SUFFIXES openblas x86_64-linux-gnu/openblas-pthread REQUIRED)

# CUDA: the toolkit is detected here; the backend itself plugs in behind the stub in
# src/backends/cuda (see docs/design/cuda.md).
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
message(STATUS "Tessera: CUDA toolkit found: ${TESSERA_CUDA_FOUND}; CUDA backend: stub (not built with CUDA)")
