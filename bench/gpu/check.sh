#!/usr/bin/env bash
# The device script: run ONCE on a borrowed GPU machine, from the repository root, with the
# bundle that scripts/build-gpu-bundle.sh made on the build machine in bundle/gpu/. That machine
# is expected to have an NVIDIA driver, Python 3 with PyTorch (and the CUDA libraries in its
# Python packages: nvidia-cuda-runtime, nvidia-cublas, nvidia-cudnn-cu13, nvidia-nccl-cu13), no
# network and none of our Debian libraries.
#
#   bench/gpu/check.sh [--bundle DIR] [--out DIR]
#
# Stages, each under its own time limit (seconds; environment overrides in brackets):
#   1 tests       every gpu test binary in the bundle          [RADLADS_T_TESTS=150]
#   2 kernels     our benchmarks: rwkv6 (bench_gpu_gla) and rwkv7 (bench_gpu_dplr) at
#                 (B,T,H,D) = (8,4096,64,64) and (12,512,28,128), attention (bench_gpu_attention)
#                 at the 7B teacher's (B,T,Hq,Hkv,D) = (12,512,28,4,128); then, time allowing,
#                 the recurrences' --simple reference kernels  [RADLADS_T_KERNELS=120]
#   3 peer        bench/gpu/fla_peer.py: fla's chunk_gla / chunk_rwkv7 and PyTorch's SDPA on the
#                 same shapes (fla comes as a wheel: without it those rows are skipped)
#                 [RADLADS_T_PEER=180]
#   4 conversion  the one-GPU tiny conversion, once `radlads-coord run` has --device
#                 [RADLADS_T_CONVERSION=120]
# (9.5 minutes in all by default, for a ten-minute loan), then ONE table (bench/gpu/table.py):
# row, shape, ours ms, peer ms, ratio, roofline ms, and the stages' statuses. Logs and the
# table go to --out (default: a new /tmp/radlads-gpu-check.*).
# Exit: 0 every stage ran and passed; 1 a stage failed or timed out; 2 no GPU here (each stage
# then says so; the test binaries still run, to check that the bundle loads).
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 2
ROOT="$PWD"
BUNDLE="$ROOT/bundle/gpu"
OUTDIR=""
while [ $# -gt 0 ]; do
  case "$1" in
    --bundle) BUNDLE="$(realpath -m "$2")"; shift 2 ;;
    --out) OUTDIR="$(realpath -m "$2")"; shift 2 ;;
    -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
    *) echo "check.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
[ -n "$OUTDIR" ] || OUTDIR="$(mktemp -d /tmp/radlads-gpu-check.XXXXXX)"
mkdir -p "$OUTDIR"
T_TESTS="${RADLADS_T_TESTS:-150}"
T_KERNELS="${RADLADS_T_KERNELS:-120}"
T_PEER="${RADLADS_T_PEER:-180}"
T_CONVERSION="${RADLADS_T_CONVERSION:-120}"
REC_SHAPES=("8 4096 64 64" "12 512 28 128")
ATT_SHAPE="12 512 28 4 128"
STAGES="$OUTDIR/stages.txt"
: > "$STAGES"
failed=0
stage() {  # name status [failed]
  printf '%s\t%s\n' "$1" "$2" >> "$STAGES"
  echo "== stage $1: $2"
  [ "${3:-}" = failed ] && failed=1
  return 0
}
remaining() { echo $(( $1 - $(date +%s) )); }
PY="$(command -v python3 || true)"

# --- the card ---
have_gpu=0
CARD=""
if ! command -v nvidia-smi >/dev/null 2>&1; then
  nogpu="no GPU: nvidia-smi is not installed on this machine"
elif ! nvidia-smi -L > "$OUTDIR/nvidia-smi.txt" 2>&1 || ! grep -q '^GPU' "$OUTDIR/nvidia-smi.txt"; then
  nogpu="no GPU: nvidia-smi -L found none ($(head -1 "$OUTDIR/nvidia-smi.txt"))"
else
  have_gpu=1
  CARD="$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)"
  echo "== card"
  nvidia-smi --query-gpu=index,name,memory.total,driver_version,clocks.max.sm,clocks.max.memory --format=csv
fi
[ "$have_gpu" = 1 ] || echo "== $nogpu"

# --- the bundle: unpack into a scratch copy, find the CUDA libraries ---
WORK="$OUTDIR/bundle"
have_bundle=0
if [ ! -f "$BUNDLE/MANIFEST" ]; then
  nobundle="no bundle at $BUNDLE (make it on the build machine: scripts/build-gpu-bundle.sh)"
  echo "== $nobundle"
elif [ -z "$PY" ]; then
  nobundle="python3 not found (needed to unpack the bundle and print the table)"
  echo "== $nobundle"
else
  rm -rf "$WORK" && mkdir -p "$WORK" && cp -r "$BUNDLE"/. "$WORK"/
  # xz-compressed files: Python's lzma, since the xz tool may be missing.
  if find "$WORK" -name '*.xz' -print0 | xargs -0 -r "$PY" -c '
import lzma, os, shutil, sys
for p in sys.argv[1:]:
    with lzma.open(p) as src, open(p[:-3], "wb") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
    shutil.copymode(p, p[:-3])
    os.remove(p)
'; then
    chmod +x "$WORK"/bin/* 2>/dev/null
    have_bundle=1
    grep -E '^(built|archs|needs_)' "$WORK/MANIFEST" | sed 's/^/== bundle /'
  else
    nobundle="could not unpack $BUNDLE"
    echo "== $nobundle"
  fi
fi
# CUDA libraries: the Python packages' nvidia/*/lib first, then a toolkit if there is one.
cuda_dirs=""
if [ -n "$PY" ]; then
  cuda_dirs="$("$PY" -c '
import glob, os
try:
    import nvidia
    roots = list(nvidia.__path__)
except Exception:
    roots = []
dirs = []
for r in roots:
    for d in sorted(glob.glob(os.path.join(r, "*", "lib")) + glob.glob(os.path.join(r, "*", "lib64"))):
        if glob.glob(os.path.join(d, "*.so*")) and d not in dirs:
            dirs.append(d)
print(":".join(dirs))
' 2>/dev/null)"
fi
for d in /usr/local/cuda/lib64 /usr/local/cuda/lib; do
  [ -d "$d" ] && cuda_dirs="${cuda_dirs:+$cuda_dirs:}$d"
done
OUR_LD="$WORK/lib${cuda_dirs:+:$cuda_dirs}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
echo "== CUDA library directories: ${cuda_dirs:-none found}"
if [ "$have_bundle" = 1 ]; then
  # glibc of this machine against what the binaries need.
  need="$(sed -n 's/^needs_glibc //p' "$WORK/MANIFEST")"
  have="$(ldd --version 2>/dev/null | head -1 | grep -oE '[0-9]+\.[0-9]+$')"
  if [ -n "$need" ] && [ -n "$have" ] && [ "$(printf '%s\n%s\n' "$need" "$have" | sort -V | head -1)" != "$need" ]; then
    echo "== WARNING: the binaries need glibc $need; this machine has $have (expect load failures)"
  fi
  # Tests built against data under the build machine's source directory find it through a link.
  src="$(sed -n 's/^source_dir //p' "$WORK/MANIFEST")"
  if [ -n "$src" ] && [ "$src" != "$ROOT" ] && [ ! -e "$src" ]; then
    if mkdir -p "$(dirname "$src")" 2>/dev/null && ln -s "$ROOT" "$src" 2>/dev/null; then
      echo "== linked $src -> $ROOT (the tests' data paths)"
    else
      echo "== note: $src (the tests' data directory when built) does not exist here"
    fi
  fi
  # Where each binary's libraries resolve; missing ones are listed.
  : > "$OUTDIR/ldd.txt"
  for b in "$WORK"/bin/*; do
    echo "-- $(basename "$b")" >> "$OUTDIR/ldd.txt"
    LD_LIBRARY_PATH="$OUR_LD" ldd "$b" >> "$OUTDIR/ldd.txt" 2>&1
  done
  grep -E 'libcudart|libcublasLt|libcudnn\.|libnccl|libopenblas' "$OUTDIR/ldd.txt" | sed 's/ (0x.*//; s/^\s*/== lib /' | sort -u
  if grep -q 'not found' "$OUTDIR/ldd.txt"; then
    echo "== MISSING libraries (see $OUTDIR/ldd.txt):"
    grep 'not found' "$OUTDIR/ldd.txt" | sort -u | sed 's/^/==   /'
  fi
fi
run_ours() {  # seconds log binary args...: runs one of our binaries with the bundle's libraries
  local t="$1" log="$2"; shift 2
  if [ "$t" -le 0 ]; then echo "stage time used up" > "$log"; return 124; fi
  ( cd "$OUTDIR" && LD_LIBRARY_PATH="$OUR_LD" timeout -k 5 "$t" "$@" ) < /dev/null > "$log" 2>&1
}

# --- stage 1: the gpu tests ---
if [ "$have_bundle" = 0 ]; then
  stage tests "not run: $nobundle" failed
else
  deadline=$(( $(date +%s) + T_TESTS ))
  pass=0 skip=0 fails=() skipped=() n=0
  while read -r kind name bin args; do
    [ "$kind" = test ] || continue
    n=$((n + 1))
    log="$OUTDIR/test-$name.log"
    # shellcheck disable=SC2086
    run_ours "$(remaining "$deadline")" "$log" "$WORK/$bin" $args
    rc=$?
    case "$rc" in
      0) pass=$((pass + 1)) ;;
      77) skip=$((skip + 1)); skipped+=("$name") ;;
      124|137) fails+=("$name (timed out)") ;;
      127) fails+=("$name (could not start: $(grep -m1 -oE '[^ ]+\.so[^ :]*' "$log" || echo 'see log'))") ;;
      *) fails+=("$name (exit $rc)") ;;
    esac
    if [ "$rc" != 0 ]; then
      echo "-- $name: exit $rc; last lines of $log:"
      tail -5 "$log" | sed 's/^/   /'
    fi
  done < "$WORK/MANIFEST"
  summary="$pass of $n passed"
  [ "$skip" -gt 0 ] && summary="$summary, $skip skipped (${skipped[*]})"
  if [ "$n" = 0 ]; then
    stage tests "no gpu test binaries in the bundle" failed
  elif [ ${#fails[@]} -gt 0 ]; then
    stage tests "$summary; FAILED: ${fails[*]}" failed
  elif [ "$have_gpu" = 0 ]; then
    stage tests "$nogpu; the binaries loaded and skipped themselves ($summary)"
  elif [ "$skip" -gt 0 ]; then
    stage tests "$summary" failed  # on a GPU machine a skip means the GPU was not usable
  else
    stage tests "$summary"
  fi
fi

# --- stage 2: our kernel benchmarks ---
OURS="$OUTDIR/ours.txt"
: > "$OURS"
if [ "$have_gpu" = 0 ]; then
  stage kernels "skipped: $nogpu"
elif [ "$have_bundle" = 0 ]; then
  stage kernels "not run: $nobundle" failed
else
  deadline=$(( $(date +%s) + T_KERNELS ))
  # The default (fast) kernels first; then the recurrences' --simple reference kernels, whose
  # rows are a bonus: a failure or timeout there is reported but does not fail the stage.
  cmds=() optional=()
  for pass in main simple; do
    while read -r kind bin _; do
      [ "$kind" = bench ] || continue
      name="$(basename "$bin")"
      case "$name" in
        bench_gpu_gla|bench_gpu_dplr)
          extra=""; [ "$pass" = simple ] && extra=" --simple"
          for s in "${REC_SHAPES[@]}"; do
            read -r b t h d <<<"$s"; cmds+=("$bin --B $b --T $t --H $h --D $d$extra"); optional+=("$pass")
          done ;;
        bench_gpu_attention)
          [ "$pass" = main ] || continue
          read -r b t hq hkv d <<<"$ATT_SHAPE"; cmds+=("$bin --B $b --T $t --Hq $hq --Hkv $hkv --D $d"); optional+=(main) ;;
        *)
          [ "$pass" = main ] || continue
          cmds+=("$bin"); optional+=(main) ;;
      esac
    done < "$WORK/MANIFEST"
  done
  runs=0 fails=() notes=()
  for i in "${!cmds[@]}"; do
    read -r bin args <<<"${cmds[$i]}"
    name="$(basename "$bin")"
    runs=$((runs + 1))
    log="$OUTDIR/kernel-$name-$runs.log"
    echo "-- $name $args"
    # shellcheck disable=SC2086
    run_ours "$(remaining "$deadline")" "$log" "$WORK/$bin" $args
    rc=$?
    { echo "== $name $args (exit $rc)"; cat "$log"; } >> "$OURS"
    tail -1 "$log" | sed 's/^/   /'
    if [ "$rc" != 0 ]; then
      if [ "${optional[$i]}" = simple ]; then notes+=("$name $args (exit $rc)"); else fails+=("$name $args (exit $rc)"); fi
    fi
  done
  [ ${#notes[@]} -gt 0 ] && echo "-- reference-kernel runs that did not finish: ${notes[*]}"
  if [ "$runs" = 0 ]; then
    stage kernels "no bench_gpu_* binaries in the bundle" failed
  elif [ ${#fails[@]} -gt 0 ]; then
    stage kernels "$runs runs; FAILED: ${fails[*]}" failed
  else
    stage kernels "$((runs - ${#notes[@]})) of $runs runs passed${notes[*]:+ (not finished, reference kernels only: ${notes[*]})}"
  fi
fi

# --- stage 3: the peer (fla, PyTorch SDPA) ---
PEER="$OUTDIR/peer.txt"
: > "$PEER"
if [ "$have_gpu" = 0 ]; then
  stage peer "skipped: $nogpu"
elif [ -z "$PY" ]; then
  stage peer "not run: python3 not found" failed
else
  shapes=()
  for s in "${REC_SHAPES[@]}"; do shapes+=("${s// /,}"); done
  echo "-- python3 bench/gpu/fla_peer.py (fla's first call compiles its Triton kernels: slow)"
  PYTHONUNBUFFERED=1 timeout -k 5 "$T_PEER" "$PY" "$ROOT/bench/gpu/fla_peer.py" \
      --shapes "${shapes[@]}" --attention "${ATT_SHAPE// /,}" < /dev/null > "$PEER" 2> "$OUTDIR/peer.log"
  rc=$?
  tail -3 "$OUTDIR/peer.log" | sed 's/^/   /'
  case "$rc" in
    0) stage peer "passed ($(grep -m1 -oE 'fla [0-9][^ ,)]*' "$OUTDIR/peer.log" || echo 'fla'))" ;;
    3) stage peer "fla not importable: its rows skipped (install the fla wheel); $(grep -m1 '^fla:' "$OUTDIR/peer.log")" ;;
    4) stage peer "not run: PyTorch with a CUDA device not found by python3 ($(tail -1 "$OUTDIR/peer.log"))" failed ;;
    124|137) stage peer "TIMED OUT after $T_PEER s (rows so far kept)" failed ;;
    *) stage peer "FAILED (exit $rc; $OUTDIR/peer.log)" failed ;;
  esac
fi

# --- stage 4: the one-GPU tiny conversion ---
coord=""
if [ "$have_bundle" = 1 ]; then coord="$(sed -n 's#^coord ##p' "$WORK/MANIFEST" | head -1)"; fi
if [ -z "$coord" ] || ! LD_LIBRARY_PATH="$OUR_LD" "$WORK/$coord" run --help 2>&1 < /dev/null | grep -q -- '--device'; then
  stage conversion "not built yet (radlads-coord run has no --device cuda in this bundle)"
elif [ "$have_gpu" = 0 ]; then
  stage conversion "skipped: $nogpu"
else
  log="$OUTDIR/conversion.log"
  conv="$OUTDIR/tiny-rwkv7"
  t0=$(date +%s)
  run_ours "$T_CONVERSION" "$log" "$WORK/$coord" run "$ROOT/configs/tiny-rwkv7.yaml" \
      --run "$conv" --device cuda
  rc=$?
  wall=$(( $(date +%s) - t0 ))
  tail -8 "$log" | sed 's/^/   /'
  # The eval numbers (output/eval.json) against the tiny default's targets (CE <= 1.10 x the
  # teacher's, top-1 >= 0.80), and the device peaks beside the one-GPU estimate (summary.txt).
  numbers=""
  if [ -f "$conv/output/eval.json" ] && [ -n "$PY" ]; then
    numbers="$("$PY" - "$conv/output/eval.json" <<'PYEOF'
import json, sys
r = json.load(open(sys.argv[1]))
t, s, s0, s1 = r["teacher"], r["student"], r["after_step0"], r["after_step1"]
ratio = s["ce"] / t["ce"]
print("student CE %.4f / teacher %.4f = %.3f x (%s), top-1 %.3f (%s), KL %.3f -> %.3f -> %.3f"
      % (s["ce"], t["ce"], ratio, "met" if ratio <= 1.10 else "MISSED",
         s["top1"], "met" if s["top1"] >= 0.80 else "MISSED", s0["kl"], s1["kl"], s["kl"]))
PYEOF
)" || numbers="eval.json unreadable"
  fi
  peaks="$(sed -n 's/^peak GPU memory of the trainers, MiB: //p' "$conv/output/summary.txt" 2>/dev/null)"
  detail="wall ${wall} s${numbers:+; $numbers}${peaks:+; device peak MiB: $peaks}"
  case "$rc" in
    0) if grep -q MISSED <<<"$numbers"; then
         stage conversion "target MISSED: $detail" failed
       else
         stage conversion "passed: $detail"
       fi ;;
    124|137) stage conversion "TIMED OUT after $T_CONVERSION s (rerun resumes: same command, same --run)" failed ;;
    *) stage conversion "FAILED (exit $rc; $log); $detail" failed ;;
  esac
fi

# --- the table ---
echo
if [ -n "$PY" ]; then
  "$PY" "$ROOT/bench/gpu/table.py" --card "$CARD" --stages "$STAGES" "$OURS" "$PEER" | tee "$OUTDIR/table.md"
else
  cat "$STAGES"
fi
echo "logs: $OUTDIR"
if [ "$have_gpu" = 0 ]; then exit 2; fi
exit "$failed"
