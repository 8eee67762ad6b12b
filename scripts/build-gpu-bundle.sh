#!/usr/bin/env bash
# Builds what bench/gpu/check.sh runs on a borrowed GPU machine: every `gpu`-label test binary
# and every bench_gpu_* benchmark, for sm_80 and sm_90 (sm_90a when a kernel uses Hopper-only
# instructions), with no host-CPU tuning (RADLADS_NATIVE=OFF: that machine's CPU differs), plus
# the shared libraries they need that such a machine lacks (OpenBLAS, libgomp, libgfortran, ...).
# The CUDA libraries themselves (cudart, cuBLAS/cuBLASLt, cuDNN, NCCL) are NOT carried: check.sh
# takes them from that machine's Python packages (nvidia-*), as are glibc and libstdc++.
#
#   scripts/build-gpu-bundle.sh [--build-dir DIR] [--out DIR] [--archs "80;90a"] [--jobs N]
#                               [--keep-going]
#
# Result: bundle/gpu/ (git-ignored): bin/ (stripped executables), lib/ (the carried libraries),
# MANIFEST (what check.sh runs, the source directory the tests were built against, the newest
# glibc / libstdc++ symbol versions the binaries need). Files over 256 KiB are stored
# xz-compressed (NAME.xz); check.sh unpacks them into a scratch directory. Prints each file's
# size and fails when the bundle is over 60 MiB (RADLADS_BUNDLE_LIMIT_MIB).
# --build-dir: default build/gpu-bundle (configured here if new; an existing one must be
# Release with RADLADS_NATIVE=OFF). --archs: default "80;90a" if kernels/cuda uses wgmma,
# setmaxnreg or sm_90a feature macros, else "80;90". --keep-going: bundle what built and list
# what did not (exit 0); without it a failed target fails the script.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BUILD="$ROOT/build/gpu-bundle"
OUT="$ROOT/bundle/gpu"
ARCHS=""
JOBS="$(nproc)"
KEEP_GOING=0
LIMIT_MIB="${RADLADS_BUNDLE_LIMIT_MIB:-60}"
while [ $# -gt 0 ]; do
  case "$1" in
    --build-dir) BUILD="$(realpath -m "$2")"; shift 2 ;;
    --out) OUT="$(realpath -m "$2")"; shift 2 ;;
    --archs) ARCHS="$2"; shift 2 ;;
    --jobs) JOBS="$2"; shift 2 ;;
    --keep-going) KEEP_GOING=1; shift ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "build-gpu-bundle: unknown argument $1" >&2; exit 2 ;;
  esac
done
command -v nvcc >/dev/null || [ -x /usr/local/cuda/bin/nvcc ] ||
  { echo "build-gpu-bundle: nvcc not found (the CUDA toolkit is needed to build the bundle)" >&2; exit 2; }
command -v xz >/dev/null || { echo "build-gpu-bundle: xz not found (apt-get install xz-utils)" >&2; exit 2; }

# --- architectures ---
if [ -z "$ARCHS" ]; then
  if grep -rqE 'wgmma|setmaxnreg|__CUDA_ARCH_FEAT_SM90_ALL' "$ROOT/kernels/cuda" 2>/dev/null; then
    ARCHS="80;90a"
    echo "build-gpu-bundle: kernels/cuda uses sm_90a-only instructions: architectures $ARCHS"
  else
    ARCHS="80;90"
    echo "build-gpu-bundle: no sm_90a-only instructions in kernels/cuda: architectures $ARCHS"
  fi
fi

# --- configure ---
cfg=(-DCMAKE_BUILD_TYPE=Release -DRADLADS_CUDA=ON -DRADLADS_NATIVE=OFF -DRADLADS_BUILD_BENCH=ON
     "-DCMAKE_CUDA_ARCHITECTURES=$ARCHS")
if [ -f "$BUILD/CMakeCache.txt" ]; then
  cached() { sed -n "s/^$1:[A-Z]*=//p" "$BUILD/CMakeCache.txt"; }
  if [ "$(cached CMAKE_BUILD_TYPE)" != Release ] || [ "$(cached RADLADS_NATIVE)" != OFF ]; then
    echo "build-gpu-bundle: $BUILD is not a Release build with RADLADS_NATIVE=OFF" \
         "(CMAKE_BUILD_TYPE=$(cached CMAKE_BUILD_TYPE), RADLADS_NATIVE=$(cached RADLADS_NATIVE))" >&2
    exit 2
  fi
else
  cfg+=(-G Ninja)
fi
# Always (re)configure: the lists of tests and targets below come from this configuration.
mkdir -p "$BUILD"
if ! cmake -S "$ROOT" -B "$BUILD" "${cfg[@]}" > "$BUILD/bundle-configure.log" 2>&1; then
  echo "build-gpu-bundle: configuring $BUILD failed:" >&2
  grep -A4 'CMake Error' "$BUILD/bundle-configure.log" | head -30 >&2
  exit 1
fi

# --- what to build: the gpu tests (ctest -L gpu) and the bench_gpu_* targets ---
# Names from ctest (labels resolved); commands from the CTestTestfile.cmake files, since ctest
# shows a command only once its executable exists.
mapfile -t TESTS < <(cd "$BUILD" && ctest -L gpu --show-only=json-v1 | python3 -c '
import json, os, re, sys
build = os.path.realpath(sys.argv[1])
names = [t["name"] for t in json.load(sys.stdin).get("tests", [])]
commands = {}
for d, _, files in os.walk(build):
    if "CTestTestfile.cmake" in files:
        for line in open(os.path.join(d, "CTestTestfile.cmake"), encoding="utf-8"):
            m = re.match(r"add_test\(\[=\[(.+?)\]=\] (.*)\)\s*$", line)
            if m:
                commands[m.group(1)] = re.findall(r"\"([^\"]*)\"", m.group(2))
for n in names:
    cmd = commands.get(n) or []
    # only our own executables (a script-driven gpu test would need more than a binary)
    if cmd and os.path.realpath(cmd[0]).startswith(build + os.sep) and not cmd[0].endswith(".sh"):
        print(n + "\t" + cmd[0] + "\t" + " ".join(cmd[1:]))
    else:
        print("build-gpu-bundle: gpu test %s is not a plain executable of ours: left out" % n, file=sys.stderr)
' "$BUILD")
mapfile -t BENCHES < <(ninja -C "$BUILD" -t targets all | sed -nE 's/^(bench_gpu_[A-Za-z0-9_]+): .*/\1/p' | sort -u)
# The one-GPU conversion: bundled once `radlads-coord run` has a --device option.
COORD=0
if grep -rqE '"--device"|--device cuda' "$ROOT/cli" 2>/dev/null; then COORD=1; fi

targets=()
for t in "${TESTS[@]}"; do targets+=("$(basename "$(cut -f2 <<<"$t")")"); done
targets+=("${BENCHES[@]}")
mapfile -t targets < <(printf '%s\n' "${targets[@]}" | sort -u)
[ "$COORD" = 1 ] && targets+=(radlads-coord)
if [ ${#targets[@]} -eq 0 ]; then
  echo "build-gpu-bundle: no gpu tests and no bench_gpu_* targets found in $BUILD" >&2
  exit 1
fi
echo "build-gpu-bundle: building ${#targets[@]} targets in $BUILD: ${targets[*]}"
start=$(date +%s)
failed=()
if ! ninja -C "$BUILD" -j "$JOBS" -k 0 "${targets[@]}" > "$BUILD/bundle-build.log" 2>&1; then
  for t in "${targets[@]}"; do
    ninja -C "$BUILD" -n "$t" 2>/dev/null | grep -q 'no work to do' || failed+=("$t")
  done
  echo "build-gpu-bundle: these targets did not build: ${failed[*]} (log: $BUILD/bundle-build.log)" >&2
  grep -E 'error|FAILED' "$BUILD/bundle-build.log" | head -20 >&2
  [ "$KEEP_GOING" = 1 ] || exit 1
fi
echo "build-gpu-bundle: build took $(( $(date +%s) - start )) s"

is_failed() { local x; for x in "${failed[@]}"; do [ "$x" = "$1" ] && return 0; done; return 1; }

# --- copy binaries and the libraries the GPU machine lacks ---
# Into OUT.partial, moved to OUT only when complete: a failed run leaves no half bundle.
FINAL="$OUT"
OUT="$FINAL.partial"
trap 'rm -rf "$OUT"' EXIT
rm -rf "$OUT"
mkdir -p "$OUT/bin" "$OUT/lib"
manifest="$OUT/MANIFEST"
{
  echo "# radlads GPU bundle (scripts/build-gpu-bundle.sh); read by bench/gpu/check.sh"
  echo "built $(date -u +%Y-%m-%dT%H:%M:%SZ) $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$ROOT" diff --quiet 2>/dev/null || echo '+dirty')"
  echo "archs $ARCHS"
  echo "source_dir $ROOT"
} > "$manifest"
bins=()
declare -A copied=()
copy_bin() {  # target path: copies the executable once; false when it did not build
  local target="$1" path="$2"
  [ -n "${copied[$target]:-}" ] && return 0
  if is_failed "$target" || [ -z "$path" ] || [ ! -x "$path" ]; then
    echo "build-gpu-bundle: $target not built: left out"
    return 1
  fi
  cp "$path" "$OUT/bin/$target"
  strip --strip-unneeded "$OUT/bin/$target"
  bins+=("$OUT/bin/$target")
  copied[$target]=1
}
# MANIFEST lines: "test NAME bin/TARGET [ARGS]", "bench bin/TARGET", "coord bin/radlads-coord".
for t in "${TESTS[@]}"; do
  IFS=$'\t' read -r name path args <<<"$t"
  target="$(basename "$path")"
  copy_bin "$target" "$path" && printf 'test %s bin/%s%s\n' "$name" "$target" "${args:+ $args}" >> "$manifest"
done
for b in "${BENCHES[@]}"; do
  copy_bin "$b" "$(find "$BUILD" -name "$b" -type f -perm -u+x | head -1)" && echo "bench bin/$b" >> "$manifest"
done
if [ "$COORD" = 1 ]; then
  copy_bin radlads-coord "$BUILD/cli/radlads-coord" && echo "coord bin/radlads-coord" >> "$manifest"
fi
[ ${#bins[@]} -gt 0 ] || { echo "build-gpu-bundle: nothing to bundle" >&2; exit 1; }

# Provided by the GPU machine: glibc, libstdc++/libgcc_s, the driver and the CUDA libraries.
provided='^(linux-vdso|ld-linux|libc\.so|libm\.so|libdl\.so|libpthread\.so|librt\.so|libutil\.so|libresolv\.so|libgcc_s\.so|libstdc\+\+\.so|libcuda\.so|libcudart\.so|libcublas\.so|libcublasLt\.so|libcudnn|libnccl\.so|libnvrtc|libnvJitLink|libcufft|libcurand|libcusparse|libcusolver|libnvToolsExt|libcupti)'
declare -A seen=()
for b in "${bins[@]}"; do
  while read -r soname path; do
    [ -n "$soname" ] || continue
    [[ "$soname" =~ $provided ]] && continue
    [ -n "${seen[$soname]:-}" ] && continue
    seen[$soname]=1
    if [ "$path" = "not" ] || [ ! -f "$path" ]; then
      echo "build-gpu-bundle: $(basename "$b") needs $soname, which is not found here" >&2
      exit 1
    fi
    cp -L "$path" "$OUT/lib/$soname"
  done < <(ldd "$b" | awk '/=>/ { print $1, $3 } !/=>/ { print $1, "" }' | sed 's#^/.*/##')
done

# The newest symbol versions the binaries and carried libraries need from the machine's glibc
# and libstdc++ (check.sh compares them with what it finds there).
newest() { objdump -T "$OUT"/bin/* "$OUT"/lib/* 2>/dev/null | grep -oE "\\b$1_[0-9]+(\\.[0-9]+)+" | sed "s/^$1_//" | sort -uV | tail -1; }
echo "needs_glibc $(newest GLIBC)" >> "$manifest"
echo "needs_glibcxx $(newest GLIBCXX)" >> "$manifest"

# --- compress the big files, report sizes, enforce the limit ---
mib() { awk -v b="$1" 'BEGIN { printf "%.2f", b / 1048576 }'; }
raw=0
while IFS= read -r -d '' f; do
  sz=$(stat -c %s "$f"); raw=$((raw + sz))
  if [ "$sz" -gt 262144 ]; then xz -T0 -6 "$f"; fi
done < <(find "$OUT/bin" "$OUT/lib" -type f -print0)
echo
echo "bundle $FINAL (stored size; raw size in brackets for compressed files):"
total=0
while IFS= read -r -d '' f; do
  sz=$(stat -c %s "$f"); total=$((total + sz))
  rel="${f#$OUT/}"
  if [[ "$f" == *.xz ]]; then
    printf '  %8s MiB  %s  [%s MiB]\n' "$(mib "$sz")" "$rel" \
      "$(mib "$(xz --robot -l "$f" | awk '$1=="totals" {print $5}')")"
  else
    printf '  %8s MiB  %s\n' "$(mib "$sz")" "$rel"
  fi
done < <(find "$OUT" -type f -print0 | sort -z)
printf 'total: %s MiB stored (%s MiB unpacked); limit %s MiB\n' "$(mib "$total")" "$(mib "$raw")" "$LIMIT_MIB"
sed -n '/^\(test\|bench\|coord\|archs\|needs_\)/p' "$manifest" | sed 's/^/  /'
if [ "$total" -gt $((LIMIT_MIB * 1048576)) ]; then
  echo "build-gpu-bundle: the bundle is over $LIMIT_MIB MiB" >&2
  exit 1
fi
rm -rf "$FINAL"
mv "$OUT" "$FINAL"
trap - EXIT
echo "bundle ready: $FINAL"
if [ ${#failed[@]} -gt 0 ]; then
  echo "build-gpu-bundle: bundled without: ${failed[*]}"
fi
