#!/usr/bin/env bash
# A single-node Slurm cluster on this machine, for tests (label `slurm`) and for trying the sbatch
# templates without a real cluster: slurmctld and slurmd from Debian's slurm-wlm, run as root in
# the foreground of background processes, on loopback, with their state, spool, logs and pid
# files under DIR. No munge: auth/none and cred/none, so the cluster trusts every local user.
# Never point real work at it.
#
#   slurm/local-cluster.sh start DIR    # writes DIR/slurm.conf, starts both daemons, waits until
#                                       # the node is idle; prints `export SLURM_CONF=...`
#   slurm/local-cluster.sh stop DIR     # stops both daemons by pid (SIGTERM, then SIGKILL)
#
# Exit codes: 0 success; 1 the daemons did not come up (their logs are printed); 2 usage;
# 77 this machine cannot run it (not root, or slurm-wlm not installed), with the reason.
set -euo pipefail

usage() { echo "usage: $0 start|stop DIR" >&2; exit 2; }
[ $# -eq 2 ] || usage
cmd="$1"
dir="$2"

stop_pid() {  # stop_pid FILE: SIGTERM the pid in FILE, wait up to 10 s, then SIGKILL
  local f="$1" pid
  [ -f "$f" ] || return 0
  pid="$(cat "$f")"
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$f"
}

case "$cmd" in
  stop)
    stop_pid "$dir/slurmd.daemon.pid"
    stop_pid "$dir/slurmctld.daemon.pid"
    exit 0
    ;;
  start) ;;
  *) usage ;;
esac

if [ "$(id -u)" != "0" ]; then
  echo "local-cluster.sh: slurmd must run as root (uid $(id -u)); skipping" >&2
  exit 77
fi
for b in slurmctld slurmd sinfo sbatch scontrol; do
  if ! command -v "$b" >/dev/null; then
    echo "local-cluster.sh: $b not found (scripts/install-deps.sh installs slurm-wlm); skipping" >&2
    exit 77
  fi
done

mkdir -p "$dir/state" "$dir/spool" "$dir/log"
dir="$(cd "$dir" && pwd)"
host="$(hostname -s)"
cpus="$(nproc)"
mem_mb="$(awk '/MemTotal/ {print int($2 / 1024 / 2)}' /proc/meminfo)"

# Two free TCP ports on loopback (the defaults 6817/6818 may belong to a real slurm).
free_port() {
  local p
  for _ in $(seq 1 50); do
    p=$((20000 + RANDOM % 20000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return 0; fi
  done
  echo "local-cluster.sh: no free port found" >&2
  return 1
}
ctld_port="$(free_port)"
d_port="$(free_port)"
while [ "$d_port" = "$ctld_port" ]; do d_port="$(free_port)"; done

cat > "$dir/slurm.conf" <<EOF
# Written by slurm/local-cluster.sh: a single-node test cluster on loopback. auth/none: tests only.
ClusterName=radlads-local
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$d_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/none
CredType=cred/none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
ReturnToService=2
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=local Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF

export SLURM_CONF="$dir/slurm.conf"
slurmctld -D -f "$SLURM_CONF" > "$dir/log/slurmctld.out" 2>&1 &
echo $! > "$dir/slurmctld.daemon.pid"
slurmd -D -f "$SLURM_CONF" > "$dir/log/slurmd.out" 2>&1 &
echo $! > "$dir/slurmd.daemon.pid"

for _ in $(seq 1 300); do
  state="$(sinfo -h -n "$host" -o %T 2>/dev/null || true)"
  if [ "$state" = "idle" ]; then
    echo "export SLURM_CONF=$SLURM_CONF"
    exit 0
  fi
  sleep 0.1
done
echo "local-cluster.sh: the node did not become idle within 30 s (state '${state:-none}'); logs:" >&2
tail -n 20 "$dir"/log/* >&2 || true
"$0" stop "$dir"
exit 1
