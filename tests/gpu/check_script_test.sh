#!/usr/bin/env bash
# bench/gpu/check.sh on a machine without a GPU, through its GPU path: a fake nvidia-smi and a
# fake bundle whose "binaries" are scripts (one stored xz-compressed, as the bundle builder
# stores big files) that print benchmark records. Checks the stage statuses, that the default
# kernels run at both recurrence shapes and attention at the teacher's, that a failing --simple
# reference run is reported without failing the stage, and that the one table comes out.
#   check_script_test.sh SOURCE_DIR
set -euo pipefail
SRC="$1"
T="$(mktemp -d)"
trap 'rm -rf "$T"' EXIT
mkdir -p "$T/fakebin" "$T/bundle/bin" "$T/bundle/lib"
cat > "$T/fakebin/nvidia-smi" <<'SMI'
#!/bin/sh
case "$*" in
  -L) echo "GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-fake)" ;;
  *query-gpu=name*) echo "NVIDIA H100 80GB HBM3" ;;
  *) echo "0, NVIDIA H100 80GB HBM3, 81559 MiB, 580.00, 1980 MHz, 2619 MHz" ;;
esac
SMI
cat > "$T/bundle/bin/ok_test" <<'S'
#!/bin/sh
echo "[  PASSED  ] 3 tests."
S
# A recurrence benchmark: one record per call; --simple at T=512 fails.
cat > "$T/bundle/bin/bench_gpu_gla" <<'S'
#!/bin/sh
impl=chunked; B=; TT=; H=; D=
while [ $# -gt 0 ]; do
  case "$1" in --B) B=$2; shift 2 ;; --T) TT=$2; shift 2 ;; --H) H=$2; shift 2 ;; --D) D=$2; shift 2 ;;
    --simple) impl=simple; shift ;; *) echo "unknown $1" >&2; exit 2 ;; esac
done
[ "$impl" = simple ] && [ "$TT" = 512 ] && { echo "simulated failure" >&2; exit 3; }
echo "timing..."
echo "{\"row\":\"rwkv6\",\"impl\":\"$impl\",\"B\":$B,\"T\":$TT,\"H\":$H,\"D\":$D,\"fwd_ms\":1.0,\"fwdbwd_ms\":4.0,\"min_bytes_fwd\":1340000000,\"min_bytes_fwdbwd\":3350000000}"
S
cat > "$T/bundle/bin/bench_gpu_attention" <<'S'
#!/bin/sh
echo "{\"row\":\"attention\",\"impl\":\"flash\",\"B\":$2,\"T\":$4,\"Hq\":$6,\"Hkv\":$8,\"D\":${10},\"fwd_ms\":0.2,\"min_bytes_fwd\":50331648}"
S
chmod +x "$T/fakebin/nvidia-smi" "$T"/bundle/bin/*
xz "$T/bundle/bin/bench_gpu_gla"
cat > "$T/bundle/MANIFEST" <<M
built 2026-01-01T00:00:00Z test
archs 80;90
source_dir $SRC
test ok_test bin/ok_test
test bench_smoke bin/bench_gpu_attention --smoke
bench bin/bench_gpu_gla
bench bin/bench_gpu_attention
needs_glibc 2.17
M
set +e
PATH="$T/fakebin:$PATH" RADLADS_T_PEER=60 "$SRC/bench/gpu/check.sh" --bundle "$T/bundle" --out "$T/out" > "$T/log" 2>&1
rc=$?
set -e
fail() { echo "FAIL: $*"; cat "$T/log"; exit 1; }
grep -q '^== card' "$T/log" || fail "no card section"
grep -qP '^tests\t2 of 2 passed$' "$T/out/stages.txt" || fail "tests stage"
grep -qP '^kernels\t4 of 5 runs passed \(not finished, reference kernels only: bench_gpu_gla --B 12 --T 512 --H 28 --D 128 --simple \(exit 3\)\)$' \
  "$T/out/stages.txt" || fail "kernels stage"
grep -qP '^conversion\tnot built yet' "$T/out/stages.txt" || fail "conversion stage"
grep -qP '^peer\t' "$T/out/stages.txt" || fail "peer stage"
tbl="$T/out/table.md"
grep -q '^card: NVIDIA H100 80GB HBM3, 3.35 TB/s$' "$tbl" || fail "card line"
grep -qE '^\| rwkv6 \(chunked\) +\| fwd +\| B=8 T=4096 H=64 D=64 +\| 1\.000 ' "$tbl" || fail "rwkv6 first shape"
grep -qE '^\| rwkv6 \(chunked\) +\| fwd\+bwd +\| B=12 T=512 H=28 D=128 +\| 4\.000 ' "$tbl" || fail "rwkv6 second shape"
grep -qE '^\| rwkv6 \(simple\) +\| fwd +\| B=8 T=4096 H=64 D=64 +\| 1\.000 ' "$tbl" || fail "simple row"
grep -qE '^\| attention \(flash\) +\| fwd +\| B=12 T=512 Hq=28 Hkv=4 D=128 +\| 0\.200 ' "$tbl" || fail "attention row"
# The peer needs PyTorch with a GPU, which this machine does not have: the run fails (exit 1).
if grep -qP '^peer\tpassed' "$T/out/stages.txt"; then [ "$rc" = 0 ] || fail "exit $rc"; else [ "$rc" = 1 ] || fail "exit $rc"; fi
