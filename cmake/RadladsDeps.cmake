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
find_package(OpenMP REQUIRED COMPONENTS CXX)

# OpenBLAS ships a config that only sets variables; wrap it in a target.
find_package(OpenBLAS CONFIG REQUIRED)
if(NOT TARGET radlads::openblas)
  add_library(radlads::openblas INTERFACE IMPORTED)
  set_target_properties(radlads::openblas PROPERTIES
      INTERFACE_INCLUDE_DIRECTORIES "${OpenBLAS_INCLUDE_DIRS}"
      INTERFACE_LINK_LIBRARIES "${OpenBLAS_LIBRARIES}")
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

# yaml-cpp 0.7 in Debian exports the plain target name `yaml-cpp`.
if(NOT TARGET radlads::yaml)
  add_library(radlads::yaml INTERFACE IMPORTED)
  set_target_properties(radlads::yaml PROPERTIES INTERFACE_LINK_LIBRARIES yaml-cpp)
endif()
