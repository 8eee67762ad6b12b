#!/usr/bin/env bash
# The chaos soak (docs/design.md §6.1): the shortened tiny conversion with two worker ranks
# (`run --workers`, dp 2, checkpoints every 3 steps) under random faults at random times, each
# followed by the same command:
#   coord_kill   SIGKILL of the coordinator (its worker job lives on and joins the next one)
#   worker_kill  SIGKILL of one worker rank (its lease expires, the job is started again)
#   sigterm      SIGTERM: the run drains and exits 3
#   corrupt      a drain, then one byte of the newest resume checkpoint flipped (the task falls
#                back to the commit before it)
#   full_disk    every checkpoint write fails with ENOSPC (RADLADS_FAULTS) until the run fails;
#                the next start has room again and reopens it
# Passing means, for every conversion: the exported weights are bit-identical to an
# uninterrupted run of the same layout; every step's ledger is exact (credited = budget) and the
# fallbacks are counted (checkpoints_discarded = corruptions); no temporary or unreferenced file
# is left (`radlads-coord checkpoints`) and no process of the run outlives it.
#
#   chaos_soak.sh RADLADS_COORD SOURCE_DIR [--faults N] [--per-run K] [--seed S] [--arch A]
#                 [--work DIR] [--keep]
#
# --faults N     faults in all (default 5; the first five are one of each kind, in random order)
# --per-run K    faults per conversion (default 5): N > K runs several conversions
# --seed S       the random seed (default: from the clock; printed, so a failure can be replayed)
# --arch A       rwkv6 or rwkv7 (default rwkv7)
# --work DIR     where the runs go (default: a new directory under /tmp, removed when passing)
# Prints one line per fault and a summary table. Exit 0 passing, 1 failing, 77 skipped (no
# mpirun). Stops what it starts, by pid.
set -uo pipefail
coord="$1"
src="$2"
shift 2
faults=5
per_run=5
seed=$(( $(date +%s) % 100000 ))
arch=rwkv7
work=""
keep=0
while [ $# -gt 0 ]; do
  case "$1" in
    --faults) faults="$2"; shift 2 ;;
    --per-run) per_run="$2"; shift 2 ;;
    --seed) seed="$2"; shift 2 ;;
    --arch) arch="$2"; shift 2 ;;
    --work) work="$2"; shift 2 ;;
    --keep) keep=1; shift ;;
    *) echo "chaos_soak: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
command -v mpirun > /dev/null || { echo "chaos_soak: skipped: mpirun not found"; exit 77; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
RANDOM=$seed
if [ -z "$work" ]; then work="$(mktemp -d /tmp/radlads-chaos.XXXXXX)"; else mkdir -p "$work"; fi
work="$(cd "$work" && pwd)"

pid=""
cleanup() {
  [ -n "$pid" ] && kill -9 "$pid" 2> /dev/null
  for p in $(pgrep -f "$work/" 2> /dev/null); do [ "$p" != "$$" ] && kill -9 "$p" 2> /dev/null; done
}
trap cleanup EXIT
fail() {
  echo "chaos_soak: FAIL (seed $seed): $*" >&2
  for f in "$work"/*.log; do [ -f "$f" ] && { echo "--- $f (tail)" >&2; tail -n 25 "$f" >&2; }; done
  echo "chaos_soak: the runs are kept in $work" >&2
  exit 1
}
now_ms() { date +%s%3N; }

# shellcheck source=tests/testing/run_config.sh
. "$src/tests/testing/run_config.sh"
cfg="$work/run.yaml"
write_run_config "$cfg" "$src" "$src/tests/data/run/recipe-$arch.yaml" "$src/tests/data/run/cluster-dp2.yaml"
# A short lease TTL (5 s: long enough for a loaded 2-core machine) so that a killed worker's task
# is leased again soon; restarts unbounded.
run_args=(--lease-ttl-ms 5000 --max-worker-restarts 1000)
weights() { sha256sum "$1/output/model/model.safetensors" 2> /dev/null | cut -d' ' -f1; }

# The uninterrupted run of the same layout.
t0=$(now_ms)
"$coord" run "$cfg" --run "$work/ref" "${run_args[@]}" > "$work/ref.log" 2>&1 || fail "the reference run failed"
ref_ms=$(( $(now_ms) - t0 ))
want="$(weights "$work/ref")"
[ -n "$want" ] || fail "the reference run exported no weights"
echo "chaos_soak: seed $seed, $arch, $faults faults, $per_run per conversion; reference run $((ref_ms / 1000)).$(( (ref_ms % 1000) / 100 )) s"

kinds=(coord_kill worker_kill sigterm corrupt full_disk)
declare -A injected=() missed=()
for k in "${kinds[@]}"; do injected[$k]=0; missed[$k]=0; done
# The order of faults: a random permutation of the five kinds first, then random kinds.
order=("${kinds[@]}")
for ((i = ${#order[@]} - 1; i > 0; i--)); do
  j=$((RANDOM % (i + 1))); t="${order[$i]}"; order[$i]="${order[$j]}"; order[$j]="$t"
done
while [ ${#order[@]} -lt "$faults" ]; do order+=("${kinds[$((RANDOM % 5))]}"); done
order=("${order[@]:0:$faults}")

run=""
logn=0
# Starts the run command in the background (extra environment as arguments).
start() {
  logn=$((logn + 1))
  env "$@" "$coord" run "$cfg" --run "$run" "${run_args[@]}" > "$work/$(basename "$run")-$logn.log" 2>&1 &
  pid=$!
}
# Waits for the run command; sets $code. Fails after $1 seconds.
finish() {
  local deadline=$((SECONDS + $1))
  while kill -0 "$pid" 2> /dev/null; do
    [ $SECONDS -lt $deadline ] || fail "$(basename "$run"): the run did not end within $1 s"
    sleep 0.05
  done
  { wait "$pid"; } 2> /dev/null; code=$?
  pid=""
}
alive() { [ -n "$pid" ] && kill -0 "$pid" 2> /dev/null; }
# A run that failed for a cause that is gone now (a task over the retry limit after several
# faults in a row): exit 1, and the message says the same command resumes it. Counted.
failed_resumed=0
resumable() {
  [ "$code" = 1 ] && grep -q "run the same command again" "$(last_log)" || return 1
  failed_resumed=$((failed_resumed + 1))
  echo "  (the run failed: $(grep -m1 'error: run failed' "$(last_log)" | cut -c1-150); the same command resumes it)"
}
last_log() { echo "$work/$(basename "$run")-$logn.log"; }
# Flips one bit of the byte in the middle of a file (and checks that the file changed).
flip_byte() {
  local size off b before
  size=$(stat -c %s "$1"); off=$((size / 2))
  b=$(od -An -tu1 -j "$off" -N1 "$1" | tr -d ' ')
  before=$(cksum < "$1")
  # The byte as an octal escape that printf expands (never a format: '%' or '\' are bytes too).
  printf "\\$(printf '%03o' $(( (b ^ 64) & 255 )))" | dd of="$1" bs=1 seek="$off" conv=notrunc status=none
  [ "$(cksum < "$1")" != "$before" ] || fail "corrupt: flipping byte $off of $1 changed nothing"
}

fault_index=0
conversion=0
corruptions=0
soak_start=$(now_ms)
# Mean gap between faults: a share of the reference run, so that most land before the end.
gap_ms=$(( ref_ms / (per_run + 1) ))
[ $gap_ms -lt 300 ] && gap_ms=300
while [ $fault_index -lt "$faults" ]; do
  conversion=$((conversion + 1))
  run="$work/run-$conversion"
  rm -rf "$run"
  conv_faults=0
  conv_corrupt=0
  while [ $conv_faults -lt "$per_run" ] && [ $fault_index -lt "$faults" ]; do
    kind="${order[$fault_index]}"
    if [ "$kind" = full_disk ]; then
      alive && { kill -TERM "$pid"; finish 120; }
      # Temporary files a killed process left earlier stay until `checkpoints --sweep`; only new
      # ones would be this run's fault.
      temps_before=$(find "$run" -name '*.tmp.*' -not -path '*/state/*' 2> /dev/null | sort)
      start RADLADS_FAULTS=enospc:checkpoints/=100000
      finish 300
      if [ "$code" = 0 ]; then missed[$kind]=$((missed[$kind] + 1)); break; fi
      [ "$code" = 1 ] || fail "full_disk: exit $code, expected 1 ($(last_log))"
      grep -q "No space left on device" "$(last_log)" || fail "full_disk: no ENOSPC message in $(last_log)"
      grep -q "needs about" "$(last_log)" || fail "full_disk: the message does not say the space needed"
      grep -q "run the same command again" "$(last_log)" || fail "full_disk: the message does not say how to resume"
      temps_new=$(comm -13 <(echo "$temps_before") <(find "$run" -name '*.tmp.*' -not -path '*/state/*' | sort) | grep . || true)
      [ -z "$temps_new" ] || fail "full_disk: a temporary file was left: $temps_new"
    else
      alive || start
      ms=$(( (RANDOM * 32768 + RANDOM) % (2 * gap_ms) ))
      sleep "$((ms / 1000)).$(printf '%03d' $((ms % 1000)))"
      if ! alive; then
        finish 10
        if [ "$code" = 0 ]; then missed[$kind]=$((missed[$kind] + 1)); break; fi
        resumable || fail "$kind: the run exited $code before the fault ($(last_log))"
        continue
      fi
      case "$kind" in
        coord_kill)
          kill -9 "$pid"; finish 30 2> /dev/null ;;
        worker_kill)
          victims=()
          for ((t = 0; t < 60 && ${#victims[@]} == 0; t++)); do
            mapfile -t victims < <(pgrep -f "^[^ ]*radlads-worker $run " 2> /dev/null)
            [ ${#victims[@]} -gt 0 ] || sleep 0.05
          done
          if [ ${#victims[@]} -eq 0 ]; then
            if ! alive; then finish 10; [ "$code" = 0 ] && { missed[$kind]=$((missed[$kind] + 1)); break; }; fi
            fail "worker_kill: no worker process of $run"
          fi
          kill -9 "${victims[$((RANDOM % ${#victims[@]}))]}" ;;
        sigterm)
          kill -TERM "$pid"; finish 120
          if [ "$code" = 0 ]; then missed[$kind]=$((missed[$kind] + 1)); break; fi
          [ "$code" = 3 ] || fail "sigterm: exit $code, expected 3 ($(last_log))" ;;
        corrupt)
          # Once a training task has a commit to resume from (read from the live run's state).
          for ((t = 0; t < 600; t++)); do
            "$coord" checkpoints "$run" 2> /dev/null | awk '$1 == "commit" && $5 == "resume"' | grep -q . && break
            alive || break
            sleep 0.05
          done
          if ! alive; then
            finish 10
            if [ "$code" = 0 ]; then missed[$kind]=$((missed[$kind] + 1)); break; fi
            resumable || fail "corrupt: the run exited $code before the fault ($(last_log))"
            continue
          fi
          kill -TERM "$pid"; finish 120
          if [ "$code" = 0 ]; then missed[$kind]=$((missed[$kind] + 1)); break; fi
          [ "$code" = 3 ] || fail "corrupt: the drain exited $code, expected 3 ($(last_log))"
          # The newest resume point of an unfinished task (its first file).
          target=""
          newest=0
          while read -r _ task step tokens role files; do
            f="${files%%,*}"
            [ -f "$run/$f" ] || continue
            m=$(stat -c %.9Y "$run/$f" | tr -d .)
            if [ "$m" -ge "$newest" ]; then newest=$m; target="$run/$f"; fi
          done < <("$coord" checkpoints "$run" | awk '$1 == "commit" && $5 == "resume"')
          if [ -z "$target" ]; then
            # Nothing to corrupt at this instant (no task had committed); try again later.
            echo "  (corrupt: no resume point yet; trying again)"
            continue
          fi
          flip_byte "$target"
          corruptions=$((corruptions + 1)); conv_corrupt=$((conv_corrupt + 1)) ;;
      esac
    fi
    injected[$kind]=$((injected[$kind] + 1))
    fault_index=$((fault_index + 1))
    conv_faults=$((conv_faults + 1))
    printf '  fault %3d  %-11s conversion %d  at %s s\n' "$fault_index" "$kind" "$conversion" \
      "$(( ($(now_ms) - soak_start) / 1000 )).$(( ($(now_ms) - soak_start) % 1000 / 100 ))"
  done
  # The same command until the run is done (each earlier command ended by a fault).
  for attempt in 1 2 3 4 5; do
    alive || start
    finish 600
    [ "$code" = 0 ] && break
    [ "$code" = 3 ] && continue
    resumable && continue
    fail "$(basename "$run"): exit $code after its faults ($(last_log))"
  done
  [ "$code" = 0 ] || fail "$(basename "$run"): did not complete"
  # Bit-identical weights.
  got="$(weights "$run")"
  [ "$got" = "$want" ] || fail "$(basename "$run"): weights $got differ from the uninterrupted run's $want"
  # The ledger: every step with tokens credited exactly its budget; each corruption a fallback.
  json="$("$coord" status "$run" --json)" || fail "status --json"
  while read -r pair; do
    b="${pair#*budget\":}"; b="${b%%,*}"; u="${pair##*used\":}"
    [ "$b" = "$u" ] || fail "$(basename "$run"): a step credited $u of its budget $b: $pair"
  done < <(grep -o '"tokens":{"budget":[0-9]*,"used":[0-9]*' <<< "$json")
  discarded="$(grep -o '"checkpoints_discarded":[0-9]*' <<< "$json" | cut -d: -f2)"
  [ "$discarded" = "$conv_corrupt" ] || fail "$(basename "$run"): $discarded checkpoints discarded, $conv_corrupt corrupted"
  # No torn or orphaned file.
  summary="$("$coord" checkpoints "$run" | tail -n 1)"
  case "$summary" in *", 0 unreferenced") ;; *) fail "$(basename "$run"): $summary" ;; esac
  ! "$coord" checkpoints "$run" | awk '$5 == "resume" || $5 == "result"' | grep -q '(deleted)' ||
    fail "$(basename "$run"): a kept checkpoint is missing"
  [ -z "$(find "$run" -name '*.tmp.*' -not -path '*/state/*')" ] || fail "$(basename "$run"): temporary files left"
  # No process of the run outlives it (old worker jobs hear that the run is over and leave).
  for ((t = 0; t < 300; t++)); do
    [ -z "$(pgrep -f "$run" 2> /dev/null)" ] && break
    sleep 0.1
  done
  [ -z "$(pgrep -f "$run" 2> /dev/null)" ] || fail "$(basename "$run"): processes outlived the run: $(pgrep -af "$run")"
  echo "  conversion $conversion: $conv_faults faults, bit-identical, ledger exact ($discarded fallbacks), no stray file or process"
  # Every fault of this conversion was recovered from: the conversion passed every check.
  total_recovered=$(( ${total_recovered:-0} + conv_faults ))
  [ $keep = 1 ] || rm -rf "$run"
done
soak_ms=$(( $(now_ms) - soak_start ))

echo
printf '%-12s %9s %10s %7s\n' kind injected recovered missed
total=0
for k in "${kinds[@]}"; do
  printf '%-12s %9d %10d %7d\n' "$k" "${injected[$k]}" "${injected[$k]}" "${missed[$k]}"
  total=$((total + injected[$k]))
done
printf '%-12s %9d %10d\n' all "$total" "${total_recovered:-0}"
echo "chaos_soak: PASS: $total faults in $conversion conversions, all recovered, weights bit-identical," \
     "$corruptions checkpoint fallbacks, $failed_resumed failed runs resumed; $((soak_ms / 1000)) s (seed $seed)"
[ "${total_recovered:-0}" = "$total" ] || fail "recovered ${total_recovered:-0} of $total"
[ $keep = 1 ] || { trap - EXIT; cleanup; rm -rf "$work"; }
exit 0
