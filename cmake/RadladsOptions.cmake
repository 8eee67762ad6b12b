# Project options. Every option is prefixed RADLADS_ and documented here and in README.md.
include_guard(GLOBAL)

set(RADLADS_CUDA "AUTO" CACHE STRING
    "Build the CUDA backend: AUTO (when nvcc is found), ON (required), OFF")
set_property(CACHE RADLADS_CUDA PROPERTY STRINGS AUTO ON OFF)
option(RADLADS_WERROR "Treat compiler warnings as errors (CI turns this on)" OFF)
option(RADLADS_SANITIZE "Build with AddressSanitizer + UndefinedBehaviorSanitizer" OFF)
option(RADLADS_FUZZ "Build libFuzzer targets (needs clang)" OFF)
option(RADLADS_NATIVE "Tune CPU code for the build machine (-march=native)" ON)
option(RADLADS_BUILD_BENCH "Build the benchmarks in bench/" ON)

if(RADLADS_FUZZ AND NOT CMAKE_CXX_COMPILER_ID MATCHES "Clang")
  message(FATAL_ERROR "RADLADS_FUZZ=ON needs clang (configure with CXX=clang++ CC=clang)")
endif()

# Flags applied to every target the project defines (not to imported ones).
set(RADLADS_CXX_WARNINGS -Wall -Wextra -Wpedantic -Wno-missing-field-initializers)
if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU" AND CMAKE_CXX_COMPILER_VERSION VERSION_LESS 13)
  # GCC 12 at -O3 reports -Wrestrict inside libstdc++'s std::string concatenation
  # (GCC bug 105329, fixed in 13): a false positive in code we do not own.
  list(APPEND RADLADS_CXX_WARNINGS -Wno-restrict)
endif()
if(CMAKE_CXX_COMPILER_ID MATCHES "Clang")
  # `#pragma omp simd` loops that clang cannot vectorise (e.g. under sanitizer instrumentation)
  # are reported as -Wpass-failed; that is a missed optimisation, not a defect.
  list(APPEND RADLADS_CXX_WARNINGS -Wno-pass-failed)
endif()
if(RADLADS_WERROR)
  list(APPEND RADLADS_CXX_WARNINGS -Werror)
endif()

set(RADLADS_SANITIZER_FLAGS "")
if(RADLADS_SANITIZE)
  set(RADLADS_SANITIZER_FLAGS -fsanitize=address,undefined -fno-sanitize-recover=undefined
      -fno-omit-frame-pointer)
  add_compile_options(${RADLADS_SANITIZER_FLAGS})
  add_link_options(${RADLADS_SANITIZER_FLAGS})
endif()
if(RADLADS_FUZZ)
  # Instrument everything for coverage; only the fuzz executables link the libFuzzer main.
  add_compile_options(-fsanitize=fuzzer-no-link)
endif()

# radlads_target_defaults(TARGET): warnings and CPU tuning for a project target.
function(radlads_target_defaults target)
  get_target_property(_type ${target} TYPE)
  target_compile_options(${target} PRIVATE
      $<$<COMPILE_LANGUAGE:CXX>:${RADLADS_CXX_WARNINGS}>)
  # No code of ours relies on floating-point traps. With trapping math (GCC's default) a select
  # between computed values cannot be if-converted without AVX-512 masks, so on AVX2 every loop
  # over our vectorised exp/expm1/log (sigmoid, SiLU, softplus, the decays) stayed scalar.
  # Values are unchanged: this allows no reassociation and no change of rounding.
  target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:CXX>:-fno-trapping-math>)
  if(RADLADS_NATIVE AND NOT RADLADS_SANITIZE)
    target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:CXX>:-march=native>)
  endif()
  target_include_directories(${target} PUBLIC $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}>)
endfunction()
