#!/usr/bin/env bash
# bench/gpu/table.py on committed sample output (tests/data/gpu_check/): our records and the
# peer's matched by row and shape, one line per impl and pass, failed rows and missing peers
# noted, non-JSON lines and records without a row ignored, the roofline from the card's name
# (none for an unknown card), the stage statuses under the table.
#   table_test.sh SOURCE_DIR
set -euo pipefail
SRC="$1"
D="$SRC/tests/data/gpu_check"
T="$SRC/bench/gpu/table.py"
diff -u "$D/expected_h100.txt" <(python3 "$T" --card "NVIDIA H100 80GB HBM3" --stages "$D/stages.txt" \
    "$D/ours.txt" "$D/peer.txt" "$D/missing.txt")
diff -u "$D/expected_unknown_card.txt" <(python3 "$T" --card "Some Future GPU" "$D/ours.txt")
# Bandwidth by card name, and the override.
first() { python3 "$T" --card "$1" "${@:2}" | head -1; }
[ "$(first "NVIDIA H200")" = "card: NVIDIA H200, 4.80 TB/s" ]
[ "$(first "NVIDIA H100 PCIe")" = "card: NVIDIA H100 PCIe, 2.00 TB/s" ]
[ "$(first "NVIDIA H100 NVL")" = "card: NVIDIA H100 NVL, 3.90 TB/s" ]
[ "$(first "NVIDIA A100-SXM4-40GB")" = "card: NVIDIA A100-SXM4-40GB, 1.55 TB/s" ]
[ "$(first "NVIDIA A100 80GB PCIe")" = "card: NVIDIA A100 80GB PCIe, 2.00 TB/s" ]
[ "$(first "Some Future GPU" --hbm-tbps 8)" = "card: Some Future GPU, 8.00 TB/s" ]
# No input at all: the table says so, and the stages still print.
out="$(python3 "$T" --stages "$D/stages.txt")"
grep -q '(no benchmark results)' <<<"$out"
grep -q 'conversion   not built yet' <<<"$out"
