#!/usr/bin/env bash
# The test command of the README quick start, and what CI runs (.ci/run calls it):
# installs what is missing, builds with -Werror, runs every test label (gpu tests skip without
# a GPU), then builds the ASan+UBSan configuration with clang and runs the unit tests and a
# short libFuzzer session on each fuzz target under it.
#
# Environment knobs (for developers; CI uses the defaults):
#   RADLADS_JOBS=N         build parallelism (default: number of cores)
#   RADLADS_SKIP_ASAN=1    skip the sanitizer build
#   RADLADS_TEST_LABELS=re ctest label regex for the main build (default: cpu|mpi|slurm|gpu)
set -euo pipefail
cd "$(dirname "$0")/.."

JOBS="${RADLADS_JOBS:-$(nproc)}"
LABELS="${RADLADS_TEST_LABELS:-cpu|mpi|slurm|gpu}"
t0=$(date +%s)
stamp() { echo "== [$(( $(date +%s) - t0 ))s] $*"; }

stamp "installing dependencies"
scripts/install-deps.sh

stamp "checking the layering (scripts/check-layers.sh)"
scripts/check-layers.sh

stamp "configuring build/release"
cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=Release -DRADLADS_WERROR=ON >/dev/null
stamp "building build/release"
cmake --build build/release -j "$JOBS"
stamp "testing build/release (labels: $LABELS)"
ctest --test-dir build/release -L "$LABELS" --output-on-failure --timeout 1200

if [ "${RADLADS_SKIP_ASAN:-0}" != "1" ]; then
  stamp "configuring build/asan (clang, ASan+UBSan, libFuzzer)"
  CC=clang CXX=clang++ cmake -S . -B build/asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      -DRADLADS_WERROR=ON -DRADLADS_SANITIZE=ON -DRADLADS_FUZZ=ON -DRADLADS_CUDA=OFF \
      -DRADLADS_BUILD_BENCH=OFF >/dev/null
  stamp "building build/asan"
  cmake --build build/asan -j "$JOBS"
  stamp "testing build/asan (unit tests and fuzz smoke runs, label cpu)"
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
      ctest --test-dir build/asan -L cpu --output-on-failure --timeout 1200
fi
stamp "all tests passed"
