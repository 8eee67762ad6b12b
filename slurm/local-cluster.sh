#!/usr/bin/env bash
# A Slurm cluster of one or more nodes on this machine, for tests (label `slurm`) and for trying
# the job scripts without a real cluster: slurmctld and one slurmd per node from Debian's
# slurm-wlm 22.05, run as root in the foreground of background processes, with their state,
# spool, TmpFS, logs and pid files under DIR. No munge: auth/none and cred/none, so the cluster
# trusts every local user. Never point real work at it.
#
# Several nodes on one host: each node is a `slurmd -N NAME` with its own port, spool directory
# and TmpFS (the PMIx plugin's per-step directories would collide otherwise), all at NodeAddr
# 127.0.0.1. CommunicationParameters=NoCtldInAddrAny,NoInAddrAny binds every daemon to loopback
# only. Every node claims all of this machine's CPUs, so N nodes oversubscribe them N times.
#
#   slurm/local-cluster.sh start DIR [--nodes N]  # writes DIR/slurm.conf, starts the daemons,
#                                                 # waits until every node is idle; prints
#                                                 # `export SLURM_CONF=...` (nodes: radlads-n1..N,
#                                                 # or this host's name when N is 1)
#   slurm/local-cluster.sh stop DIR               # stops every daemon by pid (TERM, then KILL)
#
# Exit codes: 0 success; 1 the daemons did not come up (their logs are printed); 2 usage;
# 77 this machine cannot run it (not root, or slurm-wlm not installed), with the reason.
set -euo pipefail

usage() { echo "usage: $0 start DIR [--nodes N] | stop DIR" >&2; exit 2; }
[ $# -ge 2 ] || usage
cmd="$1"
dir="$2"
nodes=1
if [ $# -eq 4 ] && [ "$3" = "--nodes" ]; then
  nodes="$4"
  [[ "$nodes" =~ ^[1-9][0-9]?$ ]] || usage
elif [ $# -ne 2 ]; then
  usage
fi

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
    for f in "$dir"/slurmd*.daemon.pid; do stop_pid "$f"; done
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

mkdir -p "$dir/state" "$dir/log"
dir="$(cd "$dir" && pwd)"
host="$(hostname -s)"
if [ "$nodes" = 1 ]; then names=("$host"); else names=(); for i in $(seq 1 "$nodes"); do names+=("radlads-n$i"); done; fi
for n in "${names[@]}"; do mkdir -p "$dir/spool-$n" "$dir/tmp-$n"; done
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
ports=()
for _ in "${names[@]}"; do
  p="$(free_port)"
  while [ "$p" = "$ctld_port" ] || [[ " ${ports[*]} " == *" $p "* ]]; do p="$(free_port)"; done
  ports+=("$p")
done
node_lines=""
for i in "${!names[@]}"; do
  node_lines+="NodeName=${names[$i]} NodeHostname=$host NodeAddr=127.0.0.1 Port=${ports[$i]} CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN"$'\n'
done
node_list="$(IFS=,; echo "${names[*]}")"

cat > "$dir/slurm.conf" <<EOF
# Written by slurm/local-cluster.sh: a $nodes-node test cluster on loopback. auth/none: tests only.
ClusterName=radlads-local
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$ctld_port
CommunicationParameters=NoCtldInAddrAny,NoInAddrAny
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
SlurmdSpoolDir=$dir/spool-%n
TmpFS=$dir/tmp-%n
KillWait=60
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd-%n.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd-%n.log
${node_lines}PartitionName=local Nodes=$node_list Default=YES MaxTime=INFINITE State=UP
EOF

export SLURM_CONF="$dir/slurm.conf"
slurmctld -D -f "$SLURM_CONF" > "$dir/log/slurmctld.out" 2>&1 &
echo $! > "$dir/slurmctld.daemon.pid"
for n in "${names[@]}"; do
  slurmd -D -N "$n" -f "$SLURM_CONF" > "$dir/log/slurmd-$n.out" 2>&1 &
  echo $! > "$dir/slurmd-$n.daemon.pid"
done

for _ in $(seq 1 300); do
  state="$(sinfo -h -o %T 2>/dev/null | sort -u | tr '\n' ' ' || true)"
  if [ "$state" = "idle " ]; then
    echo "export SLURM_CONF=$SLURM_CONF"
    exit 0
  fi
  sleep 0.1
done
echo "local-cluster.sh: the nodes did not become idle within 30 s (states '${state:-none}'); logs:" >&2
tail -n 20 "$dir"/log/* >&2 || true
"$0" stop "$dir"
exit 1
