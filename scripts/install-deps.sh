#!/usr/bin/env bash
# Installs every build and test dependency of radlads from Debian 12 packages.
# Idempotent (installs only what is missing) and non-interactive; waits for the dpkg lock.
# CUDA, cuBLAS, cuDNN and NCCL are not installed here: the build uses the CUDA 13 toolkit when
# it is present (RADLADS_CUDA=AUTO) and builds everything else without it.
set -euo pipefail

PACKAGES=(
  # toolchain
  build-essential cmake ninja-build pkg-config git
  clang libclang-rt-14-dev            # libFuzzer targets and the sanitizer build
  # libraries
  libopenmpi-dev openmpi-bin          # MPI workers
  librocksdb-dev                      # coordinator state, checkpoint index
  libhdf5-dev hdf5-tools              # activation caches (h5dump for debugging)
  libyaml-cpp-dev                     # configs
  libfmt-dev libspdlog-dev            # formatting, logging
  libboost-dev                        # Asio, Beast (header-only)
  libgtest-dev libgmock-dev           # tests
  nlohmann-json3-dev                  # JSON (safetensors headers, HF configs, status)
  libcli11-dev                        # command lines
  libopenblas-openmp-dev              # GEMM on the CPU backend (OpenMP build: one thread pool)
  libssl-dev                          # HMAC-SHA256 for the worker protocol
  libxxhash-dev                       # checksums of durable files
  zlib1g-dev
  libutf8proc-dev                     # NFC and Unicode classes for the Qwen2 tokenizer
  # a real single-node Slurm cluster for the slurm-labelled tests
  slurmctld slurmd slurm-client munge
)

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "install-deps: run as root (or install sudo)" >&2; exit 1
  fi
fi

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PACKAGES[@]} packages present"
  exit 0
fi

echo "install-deps: installing ${#missing[@]} package(s): ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
APT_OPTS=(-o DPkg::Lock::Timeout=600 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)
# Slurm's maintainer scripts try to start services; there is no init system to do so here.
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
  $SUDO chmod +x /usr/sbin/policy-rc.d
  trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
fi
$SUDO apt-get "${APT_OPTS[@]}" update -q
$SUDO apt-get "${APT_OPTS[@]}" install -y -q --no-install-recommends "${missing[@]}"
echo "install-deps: done"
