#!/usr/bin/env bash
# The main-job command of the README quick start: installs what is missing, builds
# radlads-coord (Release), and converts the tiny embedded teacher (data/tiny-teacher) into a
# RAD-RWKV7 student (or RAD-RWKV6 with `scripts/run-tiny.sh rwkv6`) with the whole RADLADS
# protocol on this machine, then evaluates teacher and student on the held-out novel.
#
#   scripts/run-tiny.sh [rwkv7|rwkv6]
#
# The run directory is runs/tiny-<arch>/. Interrupting (Ctrl-C / SIGTERM) drains: the running
# task checkpoints at its next optimizer step and the process exits 3; running the same command
# again resumes where it stopped (bit-identically), and re-running a
# finished run only prints its summary. Results: runs/tiny-<arch>/output/{eval.json,summary.txt}
# and the exported student in runs/tiny-<arch>/output/model/.
#
# Environment knobs: RADLADS_JOBS=N (build parallelism, default: number of cores).
set -euo pipefail
cd "$(dirname "$0")/.."

arch="${1:-rwkv7}"
case "$arch" in
  rwkv6|rwkv7) ;;
  *) echo "run-tiny.sh: unknown architecture '$arch' (expected rwkv6 or rwkv7)" >&2; exit 2 ;;
esac
JOBS="${RADLADS_JOBS:-$(nproc)}"

scripts/install-deps.sh
cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build/release -j "$JOBS" --target radlads-coord
exec build/release/cli/radlads-coord run "configs/tiny-$arch.yaml" --run "runs/tiny-$arch"
