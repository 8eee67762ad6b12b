#!/usr/bin/env bash
# ctest `slurm`: a real two-node Slurm cluster on this machine (slurm/local-cluster.sh --nodes 2)
# runs the shortened RAD-RWKV7 conversion submitted with `radlads-coord submit`: the coordinator
# in the batch step, one radlads-worker per node by `srun --mpi=pmix`, a dp-2 gang. Each scenario
# is its own run, interrupted once, and must finish with exported weights bit-identical to an
# uninterrupted run of the same layout (mpirun, 2 workers), and status must report it:
#   usr1     `scancel --signal=USR1 --batch` during step 1: drain, requeue, resume
#   requeue  `scontrol requeue` during step 2 (Slurm's SIGTERM to the whole job): drain, requeue
#   timeout  the time-limit warning (--signal=B:USR1@LEAD from the start), drain, requeue
#   kill     SIGKILL of one worker task in step 1 (the worker step restarts), then
#            `radlads-coord drain` in step 2: requeue, resume
#   cancel   `radlads-coord cancel` during step 1: the job ends without a requeue, status says
#            cancelled; the same submit command resumes it to the end
#
#   slurm_multinode_test.sh RADLADS_COORD SOURCE_DIR [SCENARIO...]   (default: all of them)
#
# Exit 77 (skipped, with the reason) when this machine cannot run Slurm daemons. Quiet when
# passing; RADLADS_SLURM_TIMES=FILE appends one line per scenario with the measured times.
set -euo pipefail
coord="$1"
src="$2"
shift 2
scenarios=("$@")
[ ${#scenarios[@]} -gt 0 ] || scenarios=(usr1 requeue timeout kill cancel)

# shellcheck source=tests/slurm/local_cluster_lib.sh
. "$src/tests/slurm/local_cluster_lib.sh"
job=""
fail() {
  echo "FAIL ($scenario): $*" >&2
  for f in "$tmp/$scenario"/slurm/job-*.out; do [ -f "$f" ] && { echo "--- $f" >&2; tail -n 60 "$f" >&2; }; done
  [ -n "$job" ] && scontrol show job "$job" >&2 || true
  exit 1
}
scenario="setup"

slurm_test_setup slurm-mn --nodes 2
# MPI between the ranks over loopback only.
export OMPI_MCA_btl_tcp_if_include=lo OMPI_MCA_oob_tcp_if_include=lo
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

# shellcheck source=tests/testing/run_config.sh
. "$src/tests/testing/run_config.sh"
# The shortened recipe with longer steps 1 and 2 (seconds each), so that a fault lands mid-step;
# `long` has a step 2 of about 40 s: Slurm checks time limits (and sends the warning) only every
# 30 s or so, so the timeout scenario needs a run that is still going by then.
write_config() {  # write_config NAME DISTILL_TOKENS -> $tmp/NAME.yaml
  sed -e 's/^    tokens: 8192 .*/    tokens: 49152/' -e "s/^    tokens: 4096 .*/    tokens: $2/" \
    "$src/tests/data/run/recipe-rwkv7.yaml" > "$tmp/recipe-$1.yaml"
  write_run_config "$tmp/$1.yaml" "$src" "$tmp/recipe-$1.yaml" "$tmp/cluster.yaml"
}
cat > "$tmp/cluster.yaml" <<EOF
# Two nodes of the local test cluster, one CPU worker each: a data-parallel gang of 2.
description: local test cluster, 2 nodes x 1 CPU worker
nodes: 2
gpus_per_node: 0
cpu_workers: 1
parallel:
  tp: 1
  pp: 1
  dp: 2
cache_disk_budget_gib: 1
checkpoint:
  every_steps: 3
  every_minutes: 0
slurm:
  partition: local
  time_limit: "10:00"
  signal_lead_seconds: 10
EOF
write_config short 98304
write_config long 393216
# Reference: the same layout, uninterrupted, outside Slurm (once per config, when first needed).
reference() {
  [ -d "$tmp/ref-$1" ] && return 0
  "$coord" run "$tmp/$1.yaml" --run "$tmp/ref-$1" > "$tmp/ref-$1.log" 2>&1 || { cat "$tmp/ref-$1.log" >&2; fail "reference run"; }
}

job_field() { scontrol show job "$job" 2>/dev/null | tr ' ' '\n' | sed -n "s/^$1=//p" | head -n 1; }
now() { date +%s.%N; }
# submit CONFIG RUN [extra submit args...]: submits and sets $job.
submit() {
  local config="$1" run="$2"
  shift 2
  job="$("$coord" submit "$tmp/$config.yaml" --run "$run" "$@" 2>"$tmp/submit.err" | sed -n 's/^submitted job \([0-9]*\).*/\1/p')"
  [ -n "$job" ] || { cat "$tmp/submit.err" >&2; fail "submit"; }
}
# wait_for DESCRIPTION SECONDS COMMAND...: polls until COMMAND succeeds.
wait_for() {
  local what="$1" limit="$2"
  shift 2
  local deadline=$((SECONDS + limit))
  until "$@"; do
    case "$(job_field JobState)" in
      FAILED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY) fail "job ended $(job_field JobState) while waiting for $what" ;;
    esac
    [ $SECONDS -lt $deadline ] || fail "no $what within $limit s (job state $(job_field JobState))"
    sleep 0.05
  done
}
in_step1() { [ -f "$1/cache/S00001_P00.h5" ]; }
in_step2() { compgen -G "$1/checkpoints/distill/step-*.safetensors" > /dev/null; }
requeued() { [ "$(job_field Restarts)" = "$1" ] && [ "$(job_field JobState)" = "PENDING" ]; }
nodes_idle() { [ "$(sinfo -h -o %T | sort -u)" = "idle" ] && [ -z "$(squeue -h -s -j "$job" 2>/dev/null)" ]; }
done_state() { [ "$(job_field JobState)" = "COMPLETED" ]; }
# Release a requeued job at once (Slurm holds it ~2 minutes) once the nodes are idle again and
# no step of its previous start is left (a start onto a node still cleaning up the previous one
# is refused: "Job credential revoked").
release() {
  wait_for "nodes idle after the requeue" 120 nodes_idle
  sleep 1
  wait_for "nodes idle after the requeue" 120 nodes_idle
  scontrol update JobId="$job" StartTime=now || fail "scontrol update StartTime"
}
log_of() { echo "$1/slurm/job-$job.out"; }
check_result() {
  local config="$1" run="$2"
  reference "$config"
  cmp -s "$tmp/ref-$config/output/model/model.safetensors" "$run/output/model/model.safetensors" \
    || fail "the exported weights differ from the uninterrupted run's"
  "$coord" status "$run" --json > "$tmp/status.json" 2>/dev/null || fail "status --json"
  grep -q "\"job_id\":\"$job\"" "$tmp/status.json" || fail "status does not show Slurm job $job: $(cat "$tmp/status.json")"
}
times() { [ -z "${RADLADS_SLURM_TIMES:-}" ] || echo "$*" >> "$RADLADS_SLURM_TIMES"; }

for scenario in "${scenarios[@]}"; do
  run="$tmp/$scenario"
  job=""
  config=short
  [ "$scenario" = timeout ] && config=long
  case "$scenario" in
    usr1|requeue|kill)
      submit "$config" "$run" --time 10
      if [ "$scenario" = requeue ]; then
        wait_for "step 2" 180 in_step2 "$run"
        t0="$(now)"
        scontrol requeue "$job" || fail "scontrol requeue"
      elif [ "$scenario" = kill ]; then
        wait_for "step 1" 180 in_step1 "$run"
        victim="$(pgrep -f "radlads-worker $run" | head -n 1)"
        [ -n "$victim" ] || fail "no worker process to kill"
        kill -KILL "$victim"
        wait_for "step 2 after the worker restart" 240 in_step2 "$run"
        grep -q "starting it again" "$(log_of "$run")" || fail "the worker step was not restarted"
        t0="$(now)"
        "$coord" drain "$run" --wait 120 > "$tmp/drain.out" 2>&1 || { cat "$tmp/drain.out" >&2; fail "drain"; }
      else
        wait_for "step 1" 180 in_step1 "$run"
        t0="$(now)"
        scancel --signal=USR1 --batch "$job" || fail "scancel --signal=USR1"
      fi
      wait_for "requeue" 180 requeued 1
      t1="$(now)"
      grep -q "the coordinator exited with 3" "$(log_of "$run")" || fail "the first start did not drain with exit 3"
      release
      t2="$(now)"
      wait_for "completion" 300 done_state
      t3="$(now)"
      ;;
    timeout)
      # A two-minute limit with the warning due at once: Slurm sends it at its next time check.
      submit "$config" "$run" --time 2 -- --signal=B:USR1@119
      t0="$(now)"
      wait_for "the time-limit drain and requeue" 240 requeued 1
      t1="$(now)"
      grep -q "the coordinator exited with 3" "$(log_of "$run")" || fail "no drain with exit 3 at the warning"
      scontrol update JobId="$job" TimeLimit=10 || fail "scontrol update TimeLimit"
      release
      t2="$(now)"
      wait_for "completion" 300 done_state
      t3="$(now)"
      ;;
    cancel)
      submit "$config" "$run" --time 10
      wait_for "step 1" 180 in_step1 "$run"
      t0="$(now)"
      "$coord" cancel "$run" --wait 120 > "$tmp/cancel.out" 2>&1 || { cat "$tmp/cancel.out" >&2; fail "cancel"; }
      wait_for "the cancelled job to end" 120 done_state
      t1="$(now)"
      grep -q "the coordinator exited with 4" "$(log_of "$run")" || fail "the coordinator did not exit 4"
      [ "$(job_field Restarts)" = "0" ] || fail "the cancelled job was requeued"
      "$coord" status "$run" --json > "$tmp/status.json" 2>/dev/null || true
      grep -q '"cancelled":"[^"]*radlads-coord cancel by' "$tmp/status.json" || fail "status does not say cancelled: $(cat "$tmp/status.json")"
      first="$job"
      t2="$(now)"
      submit "$config" "$run" --time 10  # the same command resumes
      [ "$job" != "$first" ] || fail "no new job"
      wait_for "completion of the resumed run" 300 done_state
      t3="$(now)"
      ;;
    *) fail "unknown scenario" ;;
  esac
  grep -q "the coordinator exited with 0" "$(log_of "$run")" || fail "the run did not finish"
  check_result "$config" "$run"
  times "$scenario drain_or_cancel_s=$(echo "$t1 - $t0" | bc) requeue_release_s=$(echo "$t2 - $t1" | bc) resume_to_done_s=$(echo "$t3 - $t2" | bc)"
done
exit 0
