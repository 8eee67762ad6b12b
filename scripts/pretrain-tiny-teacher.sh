#!/usr/bin/env bash
# Reproduces data/tiny-teacher/: a tiny Qwen2-architecture model pretrained by radlads on five
# Austen novels (Persuasion is held out and never trained on). Not a Qwen2.5 model.
#   scripts/pretrain-tiny-teacher.sh [OUT_DIR] [TOKENS]
# The exact command, seeds, thread count, tokens seen, wall time and held-out loss are written to
# OUT_DIR/training.json. Results are bit-identical for the same code, thread count and machine
# type (GEMM blocking depends on the CPU).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-data/tiny-teacher}"
TOKENS="${2:-12000000}"
BUILD="${RADLADS_BUILD_DIR:-build/release}"
if [ ! -x "$BUILD/cli/radlads-model" ]; then
  cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$BUILD" --target radlads-model radlads-data
fi
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
"$BUILD/cli/radlads-data" tokenize data/austen/emma.txt.gz data/austen/mansfield_park.txt.gz \
    data/austen/northanger_abbey.txt.gz data/austen/pride_and_prejudice.txt.gz \
    data/austen/sense_and_sensibility.txt.gz --out "$WORK/train"
"$BUILD/cli/radlads-data" tokenize data/austen/persuasion.txt.gz --out "$WORK/heldout"
"$BUILD/cli/radlads-model" --threads 2 pretrain --model tiny --train "$WORK/train" \
    --heldout "$WORK/heldout" --out "$OUT" --tokens "$TOKENS" --seq-len 256 --batch 32 \
    --lr 3e-3 --lr-final 3e-4 --warmup-steps 50 --eval-every 200 --eval-tokens 32768 \
    --seed 1 --init-seed 1
