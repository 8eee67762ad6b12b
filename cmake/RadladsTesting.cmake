# radlads_add_test(NAME <name> LABEL cpu|mpi|slurm|gpu SOURCES ... [LIBS ...] [NP n] [TIMEOUT s]
#                  [NO_MPIEXEC])
# Builds one GoogleTest executable and registers it with CTest under one label.
#  - cpu:   plain test, must pass on any machine.
#  - mpi:   run under mpiexec with NP ranks (default 2), as root, oversubscribed; with NO_MPIEXEC
#           a plain process that starts MPI jobs itself (never mpirun inside an mpirun).
#  - slurm: needs the single-node Slurm cluster that the test itself starts (slurm/local-cluster.sh).
#  - gpu:   exits 77 (skipped, with a message) when no usable CUDA device is present.
include_guard(GLOBAL)

set(RADLADS_TEST_DATA_DIR "${PROJECT_SOURCE_DIR}/tests/data")

function(radlads_add_test)
  cmake_parse_arguments(T "NO_MPIEXEC" "NAME;LABEL;NP;TIMEOUT" "SOURCES;LIBS" ${ARGN})
  if(NOT T_LABEL MATCHES "^(cpu|mpi|slurm|gpu)$")
    message(FATAL_ERROR "radlads_add_test(${T_NAME}): LABEL must be cpu, mpi, slurm or gpu")
  endif()
  add_executable(${T_NAME} ${T_SOURCES})
  radlads_target_defaults(${T_NAME})
  if(T_LABEL STREQUAL "gpu")
    set(_main radlads_gpu_test_main)
  elseif(T_LABEL STREQUAL "mpi" AND NOT T_NO_MPIEXEC)
    set(_main radlads_mpi_test_main)
  else()
    set(_main radlads_test_main)
  endif()
  target_link_libraries(${T_NAME} PRIVATE ${T_LIBS} GTest::gtest GTest::gmock ${_main})
  target_compile_definitions(${T_NAME} PRIVATE
      RADLADS_TEST_DATA_DIR="${RADLADS_TEST_DATA_DIR}"
      RADLADS_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
  if(T_LABEL STREQUAL "mpi" AND NOT T_NO_MPIEXEC)
    if(NOT T_NP)
      set(T_NP 2)
    endif()
    add_test(NAME ${T_NAME} COMMAND ${MPIEXEC_EXECUTABLE} ${MPIEXEC_NUMPROC_FLAG} ${T_NP}
             --oversubscribe $<TARGET_FILE:${T_NAME}>)
    set_tests_properties(${T_NAME} PROPERTIES ENVIRONMENT
        "OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1;OMPI_MCA_rmaps_base_oversubscribe=1")
  else()
    add_test(NAME ${T_NAME} COMMAND ${T_NAME})
  endif()
  set_tests_properties(${T_NAME} PROPERTIES LABELS ${T_LABEL}
      WORKING_DIRECTORY "${CMAKE_CURRENT_BINARY_DIR}")
  # Tests may run side by side (ctest -j): OpenMP threads must sleep, not spin, at barriers.
  set_property(TEST ${T_NAME} APPEND PROPERTY ENVIRONMENT "OMP_WAIT_POLICY=passive")
  if(T_LABEL STREQUAL "gpu")
    set_tests_properties(${T_NAME} PROPERTIES SKIP_RETURN_CODE 77)
  endif()
  if(T_TIMEOUT)
    set_tests_properties(${T_NAME} PROPERTIES TIMEOUT ${T_TIMEOUT})
  else()
    set_tests_properties(${T_NAME} PROPERTIES TIMEOUT 600)
  endif()
endfunction()
