#!/usr/bin/env bash
# ctest `slurm`: a real single-node Slurm cluster (slurm/local-cluster.sh) runs the shortened
# RAD-RWKV7 conversion through slurm/radlads-run.sbatch; the test preempts it with
# `scancel --signal=USR1 --batch` mid step 1 and checks that the job drained, requeued itself,
# resumed, and exported weights bit-identical to an uninterrupted run outside Slurm.
#
#   slurm_run_test.sh RADLADS_COORD SOURCE_DIR
#
# Exit 77 (skipped, with the reason) when this machine cannot run Slurm daemons (not root,
# slurm-wlm missing, or the daemons do not come up here). Quiet when passing.
set -euo pipefail
coord="$1"
src="$2"

# shellcheck source=tests/slurm/local_cluster_lib.sh
. "$src/tests/slurm/local_cluster_lib.sh"
fail() {
  echo "FAIL: $*" >&2
  for f in "$tmp"/job-*.out; do [ -f "$f" ] && { echo "--- $f" >&2; cat "$f" >&2; }; done
  [ -n "${job:-}" ] && scontrol show job "$job" >&2 || true
  exit 1
}

slurm_test_setup slurm-test

# The shortened test recipe (tests/data/run/), as tests/cli/run_command_test.cpp runs it.
# shellcheck source=tests/testing/run_config.sh
. "$src/tests/testing/run_config.sh"
write_run_config "$tmp/run.yaml" "$src" "$src/tests/data/run/recipe-rwkv7.yaml" "$src/tests/data/run/cluster.yaml"

# Reference: the same run, uninterrupted, outside Slurm.
"$coord" run "$tmp/run.yaml" --run "$tmp/ref" > "$tmp/ref.log" 2>&1 || { cat "$tmp/ref.log" >&2; fail "reference run"; }

# Under Slurm: submit, preempt once step 1 has cached its second segment.
job="$(RADLADS_COORD="$coord" sbatch --parsable -c 2 -o "$tmp/job-%j.out" -D "$tmp" \
       "$src/slurm/radlads-run.sbatch" "$tmp/run.yaml" "$tmp/cut")" || fail "sbatch"
job="${job%%;*}"
job_field() { scontrol show job "$job" | tr ' ' '\n' | sed -n "s/^$1=//p" | head -n 1; }

deadline=$((SECONDS + 120))
until [ -f "$tmp/cut/cache/S00001_P00.h5" ]; do
  [ "$(job_field JobState)" = "COMPLETED" ] && fail "the run finished before the preemption point"
  [ $SECONDS -lt $deadline ] || fail "the job did not reach step 1 within 120 s"
  sleep 0.02
done
scancel --signal=USR1 --batch "$job" || fail "scancel --signal=USR1"

# The job drains, requeues itself and waits out Slurm's requeue hold; release it at once.
deadline=$((SECONDS + 120))
until [ "$(job_field Restarts)" = "1" ] && [ "$(job_field JobState)" = "PENDING" ]; do
  state="$(job_field JobState)"
  case "$state" in COMPLETED|FAILED|CANCELLED|TIMEOUT) fail "job ended ($state) without a requeue" ;; esac
  [ $SECONDS -lt $deadline ] || fail "no requeue within 120 s (state $state)"
  sleep 0.1
done
# Release it only once the node has cleaned up the first allocation (a launch onto a node still
# completing the previous instance of the same job fails).
until [ "$(sinfo -h -o %T)" = "idle" ]; do
  [ $SECONDS -lt $deadline ] || fail "the node did not return to idle after the requeue"
  sleep 0.1
done
scontrol update JobId="$job" StartTime=now || fail "scontrol update StartTime"

deadline=$((SECONDS + 300))
until [ "$(job_field JobState)" = "COMPLETED" ]; do
  state="$(job_field JobState)"
  case "$state" in FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY) fail "resumed job ended $state" ;; esac
  [ $SECONDS -lt $deadline ] || fail "resumed job not done within 300 s (state $state)"
  sleep 0.2
done

out="$tmp/job-$job.out"
grep -q "radlads-coord exited with 3" "$out" || fail "the first start did not drain with exit 3"
grep -q "requeueing job $job" "$out" || fail "the job did not requeue itself"
grep -q "start 2 on" "$out" || fail "no second start"
grep -q "radlads-coord exited with 0" "$out" || fail "the resumed run did not finish"
cmp -s "$tmp/ref/output/model/model.safetensors" "$tmp/cut/output/model/model.safetensors" \
  || fail "the resumed run's exported weights differ from the uninterrupted run's"
for key in student after_step1; do
  a="$(grep -A4 "\"$key\"" "$tmp/ref/output/eval.json")"
  b="$(grep -A4 "\"$key\"" "$tmp/cut/output/eval.json")"
  [ "$a" = "$b" ] || fail "eval.json $key differs: $a vs $b"
done
exit 0
