# Sourced by the slurm tests (needs $src, the source tree): a scratch directory with a local
# Slurm cluster in it (slurm/local-cluster.sh), stopped by pid and removed when the test exits
# (kept with RADLADS_KEEP_TMP=1).
#
#   slurm_test_setup NAME [--nodes N]
#
# sets $tmp and $cluster, starts the cluster and exports its SLURM_CONF; exits 77 (the test is
# skipped) with the reason when this machine cannot run the Slurm daemons.
slurm_test_setup() {
  local name="$1"
  shift
  tmp="$(mktemp -d "/tmp/radlads-$name.XXXXXX")"
  cluster="$tmp/cluster"
  trap slurm_test_cleanup EXIT
  local env_line rc
  set +e
  env_line="$("$src/slurm/local-cluster.sh" start "$cluster" "$@" 2>"$tmp/cluster.err")"
  rc=$?
  set -e
  if [ "$rc" -ne 0 ]; then
    cat "$tmp/cluster.err" >&2
    echo "SKIP: no local Slurm cluster ($*) on this machine (local-cluster.sh exit $rc)" >&2
    exit 77
  fi
  eval "$env_line"
}

slurm_test_cleanup() {
  "$src/slurm/local-cluster.sh" stop "$cluster" || true
  if [ "${RADLADS_KEEP_TMP:-0}" = "1" ]; then echo "kept $tmp" >&2; else rm -rf "$tmp"; fi
}
