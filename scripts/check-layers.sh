#!/usr/bin/env bash
# Fails when a product file includes a header from a layer above its own, or from another
# folder on its own layer. The layers are read from the README's "What is here" table (rows
# "| N | `folder/` | ..."), which is the one place the order is written.
#   scripts/check-layers.sh [ROOT]     (default: the repository this script is in)
# Exit 0: every include points down or within its folder; 1: violations, listed as
# file:line: folder (layer N) includes folder/... (layer M); 2: the table could not be read.
set -euo pipefail
ROOT="${1:-$(cd "$(dirname "$0")/.." && pwd)}"
README="$ROOT/README.md"
[ -f "$README" ] || { echo "check-layers: $README not found" >&2; exit 2; }

layers="$(sed -nE 's/^\| *([0-9]+) *\| *`([a-z_]+)\/` *\|.*/\2 \1/p' "$README")"
if [ -z "$layers" ]; then
  echo "check-layers: $README has no layer table (rows like '| 0 | \`base/\` | ...')" >&2
  exit 2
fi

status=0
while read -r folder layer; do
  [ -d "$ROOT/$folder" ] || { echo "check-layers: layer folder $folder/ does not exist" >&2; status=1; continue; }
  while IFS= read -r hit; do
    file="${hit%%:*}"; rest="${hit#*:}"; line="${rest%%:*}"; inc="${rest#*:}"
    target="$(sed -nE 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"([a-z_]+)\/.*/\1/p' <<<"$inc")"
    [ -n "$target" ] || continue
    [ "$target" = "$folder" ] && continue
    tlayer="$(awk -v f="$target" '$1 == f { print $2 }' <<<"$layers")"
    [ -n "$tlayer" ] || continue  # not a layered folder (third-party or generated)
    if [ "$tlayer" -ge "$layer" ]; then
      echo "${file#$ROOT/}:$line: $folder/ (layer $layer) includes $(sed -nE 's/.*"(.*)".*/\1/p' <<<"$inc") (layer $tlayer)"
      status=1
    fi
  done < <(grep -rnE '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' "$ROOT/$folder" \
             --include='*.h' --include='*.cpp' --include='*.cu' --include='*.cuh' || true)
done <<<"$layers"
if [ "$status" -ne 0 ]; then
  echo "check-layers: includes must point to a lower layer (README.md, \"What is here\")" >&2
fi
exit "$status"
