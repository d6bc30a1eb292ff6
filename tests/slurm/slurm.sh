#!/usr/bin/env bash
# A single-node SLURM on this machine, on loopback, for the `slurm` tests and for trying the
# cluster profile by hand. Uses Debian's packages (apt-get install slurm-wlm munge) and keeps
# everything it writes under one state folder, except one link: /etc/slurm/slurm.conf points to
# the state folder's slurm.conf while the cluster is up (the executor plugin removes SLURM_CONF
# from a job's environment before its `srun`, so commands inside jobs need the default path).
# It never replaces a slurm.conf it did not write.
#
#   tests/slurm/slurm.sh up       start munged, slurmctld and slurmd (no-op when already up)
#   tests/slurm/slurm.sh down     stop the daemons `up` started (by their pid files)
#   tests/slurm/slurm.sh status   exit 0 when the cluster answers and the node is usable
#
# Environment: RECON3D_SLURM_DIR (state folder, default /tmp/recon3d-slurm),
# RECON3D_SLURM_PORT (slurmctld port, default 6817; slurmd uses the next one).
#
# No accounting database: job status comes from squeue (MinJobAge keeps finished jobs visible
# for 5 minutes) and every finished job is appended to the job completion log
# $RECON3D_SLURM_DIR/jobcomp.log (SLURM's own record: job id, name, state, partition, ...).
set -euo pipefail

DIR=${RECON3D_SLURM_DIR:-/tmp/recon3d-slurm}
PORT=${RECON3D_SLURM_PORT:-6817}
CONF=$DIR/slurm.conf
SYSTEM_CONF=/etc/slurm/slurm.conf
export SLURM_CONF=$CONF

need() {
  local missing=()
  for bin in munged mungekey slurmctld slurmd sbatch sinfo scontrol; do
    command -v "$bin" >/dev/null || missing+=("$bin")
  done
  if ((${#missing[@]})); then
    echo "slurm.sh: missing ${missing[*]}: apt-get install slurm-wlm munge" >&2
    exit 3
  fi
}

alive() { # alive PIDFILE: the process named in the pid file is running
  [[ -s $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null
}

usable() { # the controller answers and our node is up
  alive "$DIR/slurmctld.pid" && alive "$DIR/slurmd.pid" || return 1
  local state
  state=$(sinfo --noheader --nodes "$(hostname -s)" --format %t 2>/dev/null | head -n1) || return 1
  [[ $state =~ ^(idle|mix|alloc|comp) ]]
}

write_conf() {
  local host cpus mem
  host=$(hostname -s)
  # The machine's CPUs, as slurmd counts them: plain `nproc` follows OMP_NUM_THREADS, and a node
  # declared smaller than a job's cpus_per_task leaves that job pending forever.
  cpus=$(nproc --all)
  mem=$(($(awk '/^MemTotal:/ {print int($2 / 1024)}' /proc/meminfo) - 1024))
  cat >"$CONF" <<CONF
# Written by tests/slurm/slurm.sh: one node, loopback only, no accounting database.
ClusterName=recon3d
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$PORT
SlurmdPort=$((PORT + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$DIR/munge/munge.socket
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/slurmctld.log
SlurmdLogFile=$DIR/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
MinJobAge=300
MailProg=/bin/true
JobCompType=jobcomp/filetxt
JobCompLoc=$DIR/jobcomp.log
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
# The cluster profile's partition names (profiles/slurm): CPU jobs go to "cpu", GPU jobs to
# "gpu". This node has no GPUs, so a job asking for one is rejected at submission.
PartitionName=cpu Nodes=ALL Default=YES MaxTime=INFINITE DefMemPerCPU=512 State=UP
PartitionName=gpu Nodes=ALL Default=NO MaxTime=INFINITE DefMemPerCPU=512 State=UP
CONF
}

wait_for() { # wait_for SECONDS COMMAND...: retry until the command succeeds
  local deadline=$((SECONDS + $1))
  shift
  until "$@"; do
    ((SECONDS < deadline)) || return 1
    sleep 0.5
  done
}

up() {
  need
  if usable; then
    link_conf
    echo "slurm.sh: already up ($CONF)" >&2
    return 0
  fi
  down quiet # whatever half of a previous start is left
  mkdir -p "$DIR"/{munge,state,spool}
  chmod 700 "$DIR/munge"
  [[ -s $DIR/munge/munge.key ]] || mungekey --create --keyfile "$DIR/munge/munge.key"
  chmod 600 "$DIR/munge/munge.key"
  munged --force --socket "$DIR/munge/munge.socket" --key-file "$DIR/munge/munge.key" \
    --pid-file "$DIR/munged.pid" --log-file "$DIR/munged.log" --seed-file "$DIR/munge/seed"
  write_conf
  link_conf
  # -c: start from an empty job state, -i: ignore state that cannot be recovered.
  slurmctld -c -i -f "$CONF"
  wait_for 20 scontrol ping >/dev/null 2>&1 || fail "slurmctld did not answer" slurmctld.log
  slurmd -f "$CONF"
  if ! wait_for 30 usable; then
    fail "the node did not come up" slurmd.log
  fi
  scontrol update nodename="$(hostname -s)" state=resume >/dev/null 2>&1 || true
  echo "slurm.sh: up; node $(hostname -s), $(nproc --all) CPUs, $SYSTEM_CONF -> $CONF" >&2
}

link_conf() { # /etc/slurm/slurm.conf -> $CONF, unless someone else's slurm.conf is there
  if [[ -e $SYSTEM_CONF || -L $SYSTEM_CONF ]] && [[ $(readlink "$SYSTEM_CONF") != "$CONF" ]]; then
    echo "slurm.sh: $SYSTEM_CONF exists and is not ours; not starting a second SLURM" >&2
    exit 4
  fi
  mkdir -p "$(dirname "$SYSTEM_CONF")"
  ln -sfn "$CONF" "$SYSTEM_CONF"
}

fail() {
  echo "slurm.sh: $1; last lines of $DIR/$2:" >&2
  tail -n 20 "$DIR/$2" >&2 || true
  exit 1
}

stop() { # stop NAME: TERM the process in NAME.pid, then KILL after 10 s
  local pidfile=$DIR/$1.pid pid
  alive "$pidfile" || { rm -f "$pidfile"; return 0; }
  pid=$(cat "$pidfile")
  kill "$pid"
  wait_for 10 bash -c "! kill -0 $pid 2>/dev/null" || kill -9 "$pid" 2>/dev/null || true
  rm -f "$pidfile"
  [[ ${2:-} == quiet ]] || echo "slurm.sh: stopped $1 ($pid)" >&2
}

down() {
  # Jobs first, so that slurmd leaves no job step behind.
  if alive "$DIR/slurmctld.pid"; then
    scancel --full --state=RUNNING,PENDING --partition=cpu,gpu >/dev/null 2>&1 || true
  fi
  stop slurmd "${1:-}"
  stop slurmctld "${1:-}"
  stop munged "${1:-}"
  if [[ -L $SYSTEM_CONF && $(readlink "$SYSTEM_CONF") == "$CONF" ]]; then
    rm -f "$SYSTEM_CONF"
  fi
}

case ${1:-} in
  up) up ;;
  down) down ;;
  status) usable ;;
  *)
    echo "usage: $0 up|down|status" >&2
    exit 2
    ;;
esac
