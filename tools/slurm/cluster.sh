#!/usr/bin/env bash
# A one-node Slurm cluster on this machine, for tests, CI and trying dma's Slurm launch
# without a real cluster. Needs root (it installs packages and runs the daemons as root).
#
#   tools/slurm/cluster.sh start    install slurm-wlm + munge if missing, start munged,
#                                   slurmctld and slurmd, wait until the node is idle
#   tools/slurm/cluster.sh stop     stop the three daemons (by their pid files)
#   tools/slurm/cluster.sh status   daemons and `sinfo`
#   tools/slurm/cluster.sh env      prints `export SLURM_CONF=...`: eval it before srun/sbatch
#
# Everything lives under $DMA_SLURM_DIR (default /tmp/dma-slurm): its own munge key and socket,
# its own ports (DMA_SLURM_PORT, default 16817 and +1), so a system Slurm or munge is untouched.
# The node declares DMA_SLURM_CPUS CPUs (default 8; SlurmdParameters=config_overrides lets it
# claim more than the machine has, so `srun -n 3` fits on a 2-core VM). It also declares
# DMA_SLURM_GPUS stand-in GPUs (default 4; files under $BASE/dev, no real device), so that
# GPU options (--gpus-per-task, --gpu-bind) are scheduled and set CUDA_VISIBLE_DEVICES.
set -euo pipefail

BASE=${DMA_SLURM_DIR:-/tmp/dma-slurm}
CPUS=${DMA_SLURM_CPUS:-8}
GPUS=${DMA_SLURM_GPUS:-4}
PORT=${DMA_SLURM_PORT:-16817}
NODE=$(hostname -s 2>/dev/null || uname -n)
CONF=$BASE/etc/slurm.conf
MUNGE_SOCKET=$BASE/munge/munge.socket
export SLURM_CONF=$CONF

say() { echo "cluster.sh: $*"; }
die() { echo "cluster.sh: error: $*" >&2; exit 1; }

pid_alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

install_packages() {
  local missing=()
  for p in slurm-wlm munge; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  [ "$(id -u)" -eq 0 ] || die "missing packages ${missing[*]}: run as root or 'sudo apt-get install ${missing[*]}'"
  say "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  # policy-rc.d: the packages must not start the system's own munge/slurm services.
  local policy=/usr/sbin/policy-rc.d created=0
  if [ ! -e $policy ]; then printf '#!/bin/sh\nexit 101\n' >$policy; chmod +x $policy; created=1; fi
  apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null || { [ $created -eq 1 ] && rm -f $policy; die "apt-get install ${missing[*]} failed"; }
  [ $created -eq 1 ] && rm -f $policy
  return 0
}

plugin_dir() {
  local d
  for d in /usr/lib/x86_64-linux-gnu/slurm-wlm /usr/lib64/slurm /usr/lib/slurm /usr/local/lib/slurm; do
    [ -e "$d/select_cons_tres.so" ] && { echo "$d"; return; }
  done
  echo ""
}

write_config() {
  mkdir -p "$BASE"/{etc,state,spool,log,run,munge}
  chmod 700 "$BASE/munge"
  local mpi=none dir; dir=$(plugin_dir)
  ls "$dir"/mpi_pmix*.so >/dev/null 2>&1 && mpi=pmix
  local gres="" gpu
  if [ "$GPUS" -gt 0 ]; then
    mkdir -p "$BASE/dev"
    : >"$BASE/etc/gres.conf"
    for gpu in $(seq 0 $((GPUS - 1))); do
      # A character device (the null device's numbers): Slurm accepts no plain file here.
      [ -c "$BASE/dev/gpu$gpu" ] || mknod "$BASE/dev/gpu$gpu" c 1 3
      echo "NodeName=$NODE Name=gpu File=$BASE/dev/gpu$gpu" >>"$BASE/etc/gres.conf"
    done
    gres="Gres=gpu:$GPUS"
  fi
  cat >"$CONF" <<CONF
# Written by tools/slurm/cluster.sh: a one-node cluster on localhost.
ClusterName=dma
SlurmctldHost=$NODE(127.0.0.1)
SlurmctldPort=$PORT
SlurmdPort=$((PORT + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$MUNGE_SOCKET
StateSaveLocation=$BASE/state
SlurmdSpoolDir=$BASE/spool
SlurmctldPidFile=$BASE/run/slurmctld.pid
SlurmdPidFile=$BASE/run/slurmd.pid
SlurmctldLogFile=$BASE/log/slurmctld.log
SlurmdLogFile=$BASE/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SwitchType=switch/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=$mpi
ReturnToService=2
SlurmdParameters=config_overrides
InactiveLimit=0
KillWait=5
MinJobAge=30
GresTypes=gpu
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$CPUS $gres State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
CONF
}

start_munge() {
  pid_alive "$BASE/run/munged.pid" && return 0
  local key=$BASE/munge/munge.key
  if [ ! -s "$key" ]; then
    if command -v mungekey >/dev/null; then mungekey --create --keyfile="$key" >/dev/null
    else dd if=/dev/urandom of="$key" bs=1024 count=1 status=none; fi
    chmod 400 "$key"
  fi
  # --force: munged refuses root and /tmp-like parents otherwise; this is a private test key.
  munged --force --socket="$MUNGE_SOCKET" --key-file="$key" --pid-file="$BASE/run/munged.pid" \
    --log-file="$BASE/log/munged.log" --seed-file="$BASE/munge/munge.seed" 9>&- \
    || die "munged did not start: see $BASE/log/munged.log"
}

wait_idle() {
  local state=""
  for _ in $(seq 1 "${1:-60}"); do
    state=$(sinfo -h -N -n "$NODE" -o '%T' 2>/dev/null || true)
    [ "$state" = idle ] && return 0
    sleep 1
  done
  echo "cluster.sh: error: node $NODE is '${state:-unreachable}' after ${1:-60} s, not idle. Last log lines:" >&2
  tail -n 5 "$BASE/log/slurmctld.log" "$BASE/log/slurmd.log" >&2 2>/dev/null || true
  exit 1
}

start() {
  local t0; t0=$(date +%s)
  install_packages
  [ "$(id -u)" -eq 0 ] || die "the daemons run as root here: run 'sudo $0 start'"
  if pid_alive "$BASE/run/slurmctld.pid" && pid_alive "$BASE/run/slurmd.pid"; then
    wait_idle 30; say "already running (SLURM_CONF=$CONF)"; return 0
  fi
  stop_daemons quiet
  write_config
  start_munge
  # -c: a fresh controller state each start (no jobs left over from an earlier run).
  slurmctld -c -f "$CONF" 9>&- || die "slurmctld did not start: see $BASE/log/slurmctld.log"
  slurmd -f "$CONF" -N "$NODE" 9>&- || die "slurmd did not start: see $BASE/log/slurmd.log"
  wait_idle 60
  srun --mpi=list 2>&1 | grep -q pmix || say "warning: 'srun --mpi=list' shows no pmix: MPI jobs need another launcher"
  say "started in $(( $(date +%s) - t0 )) s: node $NODE idle with $CPUS CPUs; run: eval \"\$($0 env)\""
}

stop_pids() {  # pid files...: TERM to all at once, wait up to 10 s, then KILL what is left
  local file pids=() pid
  for file in "$@"; do pid_alive "$file" && pids+=("$(cat "$file")"); rm -f "$file"; done
  [ ${#pids[@]} -eq 0 ] && return 0
  kill -TERM "${pids[@]}" 2>/dev/null || true
  any_alive() { local p; for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && return 0; done; return 1; }
  for _ in $(seq 1 100); do any_alive || break; sleep 0.1; done
  for pid in "${pids[@]}"; do
    kill -0 "$pid" 2>/dev/null && { say "pid $pid ignored SIGTERM: killing it"; kill -KILL "$pid" 2>/dev/null || true; }
  done
  return 0
}

stop_daemons() {
  stop_pids "$BASE/run/slurmd.pid" "$BASE/run/slurmctld.pid"
  stop_pids "$BASE/run/munged.pid"   # last: the Slurm daemons authenticate through it
  [ "${1:-}" = quiet ] || say "stopped"
}

status() {
  local name rc=0
  for name in munged slurmctld slurmd; do
    if pid_alive "$BASE/run/$name.pid"; then say "$name running (pid $(cat "$BASE/run/$name.pid"))"
    else say "$name not running"; rc=1; fi
  done
  [ $rc -eq 0 ] && sinfo
  return $rc
}

# One start/stop at a time (two tests starting the cluster together). The daemons must not
# inherit fd 9, or they would hold the lock for as long as they run.
lock() { flock -w 300 9 || die "another cluster.sh start/stop has held $BASE.lock for 300 s"; }
mkdir -p "$BASE"
exec 9>"$BASE.lock"
case "${1:-}" in
  start) lock; start ;;
  stop) lock; stop_daemons ;;
  status) status ;;
  env) echo "export SLURM_CONF=$CONF" ;;
  *) echo "usage: $0 start|stop|status|env" >&2; exit 2 ;;
esac
