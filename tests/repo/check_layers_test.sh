#!/usr/bin/env bash
# scripts/check-layers.sh: passes on this repository, and fails on a copy of its layer table
# with an include that points up a layer and one between two folders of the same layer.
set -euo pipefail
SRC="$1"
"$SRC/scripts/check-layers.sh" "$SRC"

t="$(mktemp -d)"
trap 'rm -rf "$t"' EXIT
cp "$SRC/README.md" "$t/"
for d in $(sed -nE 's/^\| *[0-9]+ *\| *`([a-z_]+)\/` *\|.*/\1/p' "$SRC/README.md"); do mkdir -p "$t/$d"; done
printf '#include "base/status.h"\n' > "$t/kernels/fine.h"
if ! "$SRC/scripts/check-layers.sh" "$t" >/dev/null; then
  echo "check-layers refused a tree whose includes all point down" >&2; exit 1
fi
printf '#include "rpc/client.h"\n' > "$t/state/up.cpp"
printf '#include "pipeline/decoder.h"\n' > "$t/configs/sideways.h"
out="$("$SRC/scripts/check-layers.sh" "$t" 2>&1)" && { echo "check-layers passed a tree with violations" >&2; exit 1; }
for want in "state/up.cpp:1: state/ (layer 6) includes rpc/client.h (layer 8)" \
            "configs/sideways.h:1: configs/ (layer 3) includes pipeline/decoder.h (layer 3)"; do
  grep -qF "$want" <<<"$out" || { echo "missing from the report: $want" >&2; echo "$out" >&2; exit 1; }
done
