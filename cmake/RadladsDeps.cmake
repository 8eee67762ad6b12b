# Every third-party dependency, found once, as imported targets. scripts/install-deps.sh
# installs all of them from Debian 12 packages.
include_guard(GLOBAL)

find_package(Threads REQUIRED)
find_package(MPI REQUIRED COMPONENTS C CXX)
find_package(Boost 1.74 REQUIRED)
find_package(yaml-cpp REQUIRED)
find_package(fmt REQUIRED)
find_package(spdlog REQUIRED)
find_package(nlohmann_json 3 REQUIRED)
find_package(CLI11 REQUIRED)
find_package(GTest REQUIRED)
find_package(RocksDB CONFIG REQUIRED)
find_package(HDF5 REQUIRED COMPONENTS C)
find_package(OpenSSL REQUIRED)
find_package(ZLIB REQUIRED)
find_package(OpenMP REQUIRED COMPONENTS CXX)

# OpenBLAS: the OpenMP build, so that GEMMs and our own `#pragma omp` loops share one thread
# pool. With the pthread build the two pools fight for the cores (OpenMP workers spin after
# each parallel region while OpenBLAS threads want the cores): small ops became ~10x slower.
# Debian installs both builds side by side and its alternatives point libopenblas.so.0 at the
# pthread one, so link the OpenMP build by full path with an rpath to its directory.
find_library(RADLADS_OPENBLAS_LIBRARY openblas
    PATHS /usr/lib/${CMAKE_LIBRARY_ARCHITECTURE}/openblas-openmp NO_DEFAULT_PATH)
find_path(RADLADS_OPENBLAS_INCLUDE_DIR cblas.h
    PATHS /usr/include/${CMAKE_LIBRARY_ARCHITECTURE}/openblas-openmp NO_DEFAULT_PATH)
if(NOT RADLADS_OPENBLAS_LIBRARY OR NOT RADLADS_OPENBLAS_INCLUDE_DIR)
  message(FATAL_ERROR "OpenBLAS (OpenMP build) not found: install libopenblas-openmp-dev "
                      "(scripts/install-deps.sh does)")
endif()
get_filename_component(_openblas_dir "${RADLADS_OPENBLAS_LIBRARY}" DIRECTORY)
if(NOT TARGET radlads::openblas)
  add_library(radlads::openblas INTERFACE IMPORTED)
  set_target_properties(radlads::openblas PROPERTIES
      INTERFACE_INCLUDE_DIRECTORIES "${RADLADS_OPENBLAS_INCLUDE_DIR}"
      INTERFACE_LINK_LIBRARIES "${RADLADS_OPENBLAS_LIBRARY};OpenMP::OpenMP_CXX"
      INTERFACE_LINK_OPTIONS "LINKER:-rpath,${_openblas_dir}")
endif()

# xxHash has no CMake config in Debian 12.
find_path(XXHASH_INCLUDE_DIR xxhash.h REQUIRED)
find_library(XXHASH_LIBRARY xxhash REQUIRED)
if(NOT TARGET radlads::xxhash)
  add_library(radlads::xxhash UNKNOWN IMPORTED)
  set_target_properties(radlads::xxhash PROPERTIES
      IMPORTED_LOCATION "${XXHASH_LIBRARY}"
      INTERFACE_INCLUDE_DIRECTORIES "${XXHASH_INCLUDE_DIR}")
endif()

# utf8proc (NFC and Unicode categories for the Qwen2 tokenizer) has no CMake config in Debian 12.
find_path(UTF8PROC_INCLUDE_DIR utf8proc.h)
find_library(UTF8PROC_LIBRARY utf8proc)
if(NOT UTF8PROC_INCLUDE_DIR OR NOT UTF8PROC_LIBRARY)
  message(FATAL_ERROR "utf8proc not found: install libutf8proc-dev (scripts/install-deps.sh does)")
endif()
if(NOT TARGET radlads::utf8proc)
  add_library(radlads::utf8proc UNKNOWN IMPORTED)
  set_target_properties(radlads::utf8proc PROPERTIES
      IMPORTED_LOCATION "${UTF8PROC_LIBRARY}"
      INTERFACE_INCLUDE_DIRECTORIES "${UTF8PROC_INCLUDE_DIR}")
endif()

# yaml-cpp 0.7 in Debian exports the plain target name `yaml-cpp`.
if(NOT TARGET radlads::yaml)
  add_library(radlads::yaml INTERFACE IMPORTED)
  set_target_properties(radlads::yaml PROPERTIES INTERFACE_LINK_LIBRARIES yaml-cpp)
endif()
