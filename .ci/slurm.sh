#!/usr/bin/env bash
# A real single-node SLURM cluster for the tests, in one folder, started by hand.
#
#   .ci/slurm.sh up DIR     write DIR/slurm.conf, start munged, slurmctld and slurmd,
#                           wait until the node is idle, write the daemons' PIDs to DIR/pids
#   .ci/slurm.sh down DIR   stop exactly the PIDs in DIR/pids (nothing else is removed)
#
# Then point the SLURM commands at the generated config:
#
#   export SLURM_CONF=DIR/slurm.conf
#   sinfo; sbatch --wrap hostname; squeue
#
# Everything lives in DIR: the config, munged's socket and log, slurmctld's state,
# slurmd's spool and both daemons' logs (DIR/log/*.log: look there when `up` fails);
# only the munge key is the machine's, /etc/munge/munge.key (created when missing).
# The node is this machine under its short host name (`hostname -s`) at 127.0.0.1, with
# 4 CPUs and 8000 MB declared whatever the hardware has (SlurmdParameters=config_overrides);
# the ports are free ones chosen at start, so two clusters (two test sessions) can run
# side by side. No accounting: `sacct` has nothing to show; use `squeue`.
#
# DIR's parent folders must be searchable by the munge user (a folder under /tmp is; one
# under a 0700 folder such as pytest's tmp_path is not).
#
# Needs root (the daemons run as root, munged as the munge user) and Debian's
# slurm-wlm and munge packages: apt-get install slurm-wlm munge. Exit codes: 0 done,
# 2 bad usage, 3 SLURM or munge not installed, 4 not root, 5 a daemon failed to start
# or the node did not become idle in time (SLURM_UP_TIMEOUT seconds, default 60).
set -euo pipefail

usage() {
    echo "usage: $0 up DIR | down DIR" >&2
    exit 2
}

[[ $# -eq 2 ]] || usage
action=$1
dir=$2

fail() {  # fail CODE MESSAGE
    echo "slurm.sh: $2" >&2
    exit "$1"
}

free_port() {  # a port the kernel reports free (a random high one without python3)
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' \
        2>/dev/null || echo $((20000 + RANDOM % 40000))
}

pid_of() {  # pid_of NAME: the PID recorded for a daemon in DIR/pids
    awk -v n="$1" '$1 == n {print $2}' "$dir/pids"
}

cancel_jobs() {  # cancel this cluster's jobs, so that none outlives its slurmd
    local pid ids
    pid=$(pid_of slurmctld)
    [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 0
    export SLURM_CONF=$dir/slurm.conf
    ids=$(squeue -h -o %i 2>/dev/null) || return 0
    [[ -n $ids ]] || return 0
    # shellcheck disable=SC2086
    scancel $ids 2>/dev/null || true
    for _ in $(seq 100); do
        [[ -z $(squeue -h -o %i 2>/dev/null) ]] && return 0
        sleep 0.1
    done
    echo "slurm.sh: jobs still listed after 10 s: $(squeue -h -o '%i %t' | tr '\n' ' ')" >&2
}

stop_pids() {
    [[ -f $dir/pids ]] || return 0
    cancel_jobs
    # slurmd and slurmctld together, then munged, which they use until they exit. A PID
    # is signalled only while it is still the daemon we started (its command name).
    signal_and_wait slurmd slurmctld
    signal_and_wait munged
    rm -f "$dir/pids"
}

signal_and_wait() {  # signal_and_wait NAME...: SIGTERM, up to 10 s, then SIGKILL
    local name pid pids=()
    for name in "$@"; do
        pid=$(pid_of "$name")
        [[ -n $pid && $(cat "/proc/$pid/comm" 2>/dev/null) == "$name" ]] || continue
        kill -TERM "$pid" 2>/dev/null && pids+=("$pid")
    done
    for pid in "${pids[@]}"; do
        for _ in $(seq 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
    done
}

write_config() {
    local host=$1 ctld_port=$2 slurmd_port=$3
    cat >"$dir/slurm.conf" <<EOF
# Written by .ci/slurm.sh: a one-node test cluster. Clients: export SLURM_CONF=$dir/slurm.conf
ClusterName=hpcaet-test
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$dir/munge/munge.socket
CredType=cred/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool/slurmd-%n
SlurmctldPidFile=$dir/run/slurmctld.pid
SlurmdPidFile=$dir/run/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SwitchType=switch/none
MailProg=/bin/true
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
ReturnToService=2
SlurmdParameters=config_overrides
# Quick turnover for tests: a cancelled job is killed 2 s after SIGTERM; finished jobs
# stay visible to scontrol show job for 5 minutes.
KillWait=2
MinJobAge=300
InactiveLimit=0
SlurmctldTimeout=30
SlurmdTimeout=30
NodeName=$host NodeAddr=127.0.0.1 CPUs=4 RealMemory=8000 State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
}

up() {
    command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null \
        || fail 3 "SLURM is not installed (no slurmctld, slurmd or munged on PATH); install it with: apt-get install slurm-wlm munge"
    command -v sinfo >/dev/null || fail 3 "the SLURM client commands are missing (no sinfo); install them with: apt-get install slurm-wlm"
    [[ $(id -u) -eq 0 ]] || fail 4 "the test cluster must be started as root (the daemons run as root); got uid $(id -u)"
    id munge >/dev/null 2>&1 || fail 3 "there is no munge user; install munge with: apt-get install munge"
    if [[ -f $dir/pids ]]; then
        fail 5 "$dir/pids exists: a cluster may already run from $dir; stop it first with: $0 down $dir"
    fi

    mkdir -p "$dir"/{state,spool,run,log,munge}
    dir=$(cd "$dir" && pwd)
    # munged (user munge) must reach its folder, and clients its socket.
    chmod 755 "$dir"
    chown munge:munge "$dir/munge"
    chmod 755 "$dir/munge"  # munged: the socket folder must be searchable by all

    local key=/etc/munge/munge.key
    if [[ ! -f $key ]]; then
        mkdir -p /etc/munge
        if command -v mungekey >/dev/null; then
            mungekey --create --keyfile="$key"
        else
            dd if=/dev/urandom of="$key" bs=1 count=1024 status=none
        fi
        chown munge:munge "$key"
        chmod 400 "$key"
        echo "slurm.sh: created the munge key $key" >&2
    fi

    local host ctld_port slurmd_port
    host=$(hostname -s)
    ctld_port=$(free_port)
    slurmd_port=$(free_port)
    while [[ $slurmd_port == "$ctld_port" ]]; do slurmd_port=$(free_port); done
    write_config "$host" "$ctld_port" "$slurmd_port"
    export SLURM_CONF=$dir/slurm.conf
    : >"$dir/pids"

    local start=$SECONDS
    # munged forks; its PID file tells us which process to stop.
    runuser -u munge -- munged \
        --socket="$dir/munge/munge.socket" \
        --pid-file="$dir/munge/munged.pid" \
        --log-file="$dir/munge/munged.log" \
        --seed-file="$dir/munge/munged.seed" \
        --key-file="$key" \
        || { rm -f "$dir/pids"; fail 5 "munged did not start; see $dir/munge/munged.log"; }
    echo "munged $(cat "$dir/munge/munged.pid")" >>"$dir/pids"

    # slurmctld and slurmd in the foreground (-D) of a background job, each in a session
    # of its own (no signal to the caller's process group reaches them): $! is the daemon.
    setsid slurmctld -D -i -f "$dir/slurm.conf" >"$dir/log/slurmctld.out" 2>&1 </dev/null &
    echo "slurmctld $!" >>"$dir/pids"
    setsid slurmd -D -f "$dir/slurm.conf" >"$dir/log/slurmd.out" 2>&1 </dev/null &
    echo "slurmd $!" >>"$dir/pids"

    local timeout=${SLURM_UP_TIMEOUT:-60} state=""
    while ((SECONDS - start < timeout)); do
        for name in slurmctld slurmd; do
            pid=$(pid_of "$name")
            if ! kill -0 "$pid" 2>/dev/null; then
                echo "slurm.sh: $name exited at start; the end of $dir/log/$name.log:" >&2
                tail -n 20 "$dir/log/$name.log" "$dir/log/$name.out" >&2 2>/dev/null || true
                stop_pids
                exit 5
            fi
        done
        state=$(sinfo -h -n "$host" -o %t 2>/dev/null || true)
        if [[ $state == idle ]]; then
            echo "slurm.sh: node $host idle after $((SECONDS - start)) s; export SLURM_CONF=$dir/slurm.conf" >&2
            return 0
        fi
        sleep 0.5
    done
    echo "slurm.sh: node $host not idle after $timeout s (state: '${state:-no answer}'); logs in $dir/log" >&2
    tail -n 20 "$dir/log/slurmctld.log" "$dir/log/slurmd.log" >&2 2>/dev/null || true
    stop_pids
    exit 5
}

case $action in
    up) up ;;
    down) stop_pids ;;
    *) usage ;;
esac
