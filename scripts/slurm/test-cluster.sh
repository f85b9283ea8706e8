#!/usr/bin/env bash
# `pclab reproduce` on a real one-node SLURM cluster (make test runs this): installs Debian's SLURM
# and munge when missing (as root), starts munge and a cluster from a generated configuration in a
# temporary folder (its own ports; the node's size from `slurmd -C`), then
#   1. submits a 4-task job array of a small fig1, waits for it, and checks that the shards merged
#      equal a one-process run of the same command, bit for bit;
#   2. cancels one task of a second array after its first run, resubmits that task, and checks that
#      the merge still equals the one-process run.
# Every daemon it started is stopped on exit. PCLAB_SLURM_TEST=0 skips it (loudly).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
if [ "${PCLAB_SLURM_TEST:-1}" = "0" ]; then
  echo "!!!!!!!! SLURM test SKIPPED (PCLAB_SLURM_TEST=0): the job-array path was not checked !!!!!!!!"
  exit 0
fi
PCLAB=${PCLAB:-$root/target/release/pclab}
[ -x "$PCLAB" ] || { echo "slurm test: $PCLAB is missing; build it with cargo build --release"; exit 1; }
export PCLAB

packages="slurmctld slurmd slurm-client munge"
missing=""
for p in $packages; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "slurm test: Debian packages missing:$missing"
    echo "install them with:  sudo apt-get install -y --no-install-recommends $packages"
    echo "(or set PCLAB_SLURM_TEST=0 to skip this test)"
    exit 1
  fi
  echo "slurm test: installing$missing"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y --no-install-recommends $missing >/dev/null 2>&1 \
    || { apt-get update >/dev/null && apt-get install -y --no-install-recommends $missing >/dev/null; }
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "slurm test: the daemons of a one-node cluster run as root here; run make test as root or set PCLAB_SLURM_TEST=0"
  exit 1
fi

dir=$(mktemp -d /tmp/pclab-slurm.XXXXXX)
started_munge=0
cleanup() {
  status=$?
  for f in "$dir/slurmd.pid" "$dir/slurmctld.pid"; do
    [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null || true
  done
  if [ "$started_munge" = 1 ] && [ -f /run/munge/munged.pid ]; then kill "$(cat /run/munge/munged.pid)" 2>/dev/null || true; fi
  sleep 0.5
  if [ "$status" -ne 0 ]; then
    echo "slurm test FAILED; the cluster's logs:"
    tail -n 20 "$dir"/slurmctld.log "$dir"/slurmd.log "$dir"/*.txt 2>/dev/null || true
  fi
  rm -rf "$dir"
}
trap cleanup EXIT

# munge: reuse a running one, else start it (and stop it at the end).
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  [ -f /etc/munge/munge.key ] || runuser -u munge -- mungekey --create >/dev/null 2>&1 || mungekey --create
  mkdir -p /run/munge && chown munge:munge /run/munge && chmod 0755 /run/munge
  runuser -u munge -- /usr/sbin/munged
  started_munge=1
  for _ in $(seq 1 50); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.1; done
fi
munge -n | unmunge >/dev/null

# Two free ports for this cluster alone.
free_port() {
  local p
  for p in $(seq "$1" $(($1 + 500))); do
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
  done
  echo "no free port from $1" >&2; return 1
}
ctld_port=$(free_port $((17000 + $$ % 1000)))
slurmd_port=$(free_port $((ctld_port + 1)))

# The node as slurmd sees it (a node that claims more than it has is drained).
node=$(slurmd -C | head -n 1)
cpus=$(sed -n 's/.*CPUs=\([0-9]*\).*/\1/p' <<<"$node")
mem=$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$node")
mkdir -p "$dir/state" "$dir/spool"
cat >"$dir/slurm.conf" <<EOF
ClusterName=pclab
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SwitchType=switch/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MailProg=/bin/true
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
MinJobAge=300
NodeName=localhost NodeAddr=127.0.0.1 CPUs=${cpus:-1} RealMemory=${mem:-1000} State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
export SLURM_CONF=$dir/slurm.conf
slurmctld
slurmd -N localhost
for _ in $(seq 1 120); do [ "$(sinfo -h -o %T 2>/dev/null)" = idle ] && break; sleep 0.5; done
[ "$(sinfo -h -o %T)" = idle ] || { echo "slurm test: the node did not become idle: $(sinfo -h)"; exit 1; }
echo "slurm test: a one-node cluster is up (CPUs=$cpus, ports $ctld_port/$slurmd_port, $(sinfo -V))"

lines() { cat "$1"/runs*.jsonl 2>/dev/null | wc -l; }
# The merge refuses a run present in both folders with different results: merging the array's
# folder with the one-process folder succeeds only if every run is the same, bit for bit.
same() {
  local want; want=$("$PCLAB" reproduce "${@:3}" --out "$dir/list" --list | wc -l)
  [ "$(lines "$1")" = "$want" ] || { echo "slurm test: $1 holds $(lines "$1") runs, the list has $want"; return 1; }
  [ "$(lines "$2")" = "$want" ] || { echo "slurm test: $2 holds $(lines "$2") runs, the list has $want"; return 1; }
  "$PCLAB" report "$1" "$2" --out "$dir/merged" >/dev/null
  echo "slurm test: $want runs of $1 equal the one-process run, bit for bit"
}
cpu_of() { sed -n 's/.* s wall, \([0-9.]*\) s CPU.*/\1/p' "$@" | awk '{s += $1} END {printf "%.1f", s}'; }

# 1. A 4-task array against one process.
small=(fig1 --width 16 --depths 2,4 --seeds 0,1 --iters 30 --eval-every 10)
sbatch --parsable --wait --array=0-3 --output="$dir/a-%a.txt" scripts/slurm/reproduce.sbatch "${small[@]}" --out "$dir/array" >/dev/null
"$PCLAB" reproduce "${small[@]}" --out "$dir/one" >"$dir/one.txt" 2>&1
same "$dir/array" "$dir/one" "${small[@]}"
echo "slurm test: CPU seconds, 4 shards $(cpu_of "$dir"/a-*.txt) against one process $(cpu_of "$dir/one.txt")"

# 2. Cancel a task after its first run, resubmit it, merge again.
longer=(fig1 --width 64 --depths 2,4 --seeds 0,1 --iters 1500 --eval-every 500)
job=$(sbatch --parsable --array=0-3 --output="$dir/c-%a.txt" scripts/slurm/reproduce.sbatch "${longer[@]}" --out "$dir/cancel")
shard1="$dir/cancel/runs.shard-1-of-4.jsonl"
for _ in $(seq 1 1200); do [ -s "$shard1" ] && break; sleep 0.1; done
[ -s "$shard1" ] || { echo "slurm test: task 1 finished no run in 120 s"; exit 1; }
scancel "${job}_1"
for _ in $(seq 1 1200); do squeue -h -j "$job" 2>/dev/null | grep -q . || break; sleep 0.2; done
kept=$(wc -l <"$shard1")
[ "$kept" -lt 3 ] || { echo "slurm test: task 1 had finished all its runs before the cancel arrived; nothing was cut"; exit 1; }
echo "slurm test: task 1 cancelled with $kept of its 3 runs written; resubmitting it"
sbatch --parsable --wait --array=1 --output="$dir/r-%a.txt" scripts/slurm/reproduce.sbatch "${longer[@]}" --shards 4 --out "$dir/cancel" >/dev/null
grep -q "($kept finished before)" "$dir/r-1.txt" || { echo "slurm test: the resubmitted task did not skip its finished runs:"; cat "$dir/r-1.txt"; exit 1; }
"$PCLAB" reproduce "${longer[@]}" --jobs 2 --out "$dir/cancel-one" >/dev/null 2>&1
same "$dir/cancel" "$dir/cancel-one" "${longer[@]}"
echo "slurm test: ok"
