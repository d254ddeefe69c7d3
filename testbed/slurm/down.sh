#!/usr/bin/env bash
# Stop the Slurm test bed started by up.sh (slurmctld, slurmd, private munged), by
# their pid files under $TESTBED_DIR. Idempotent; keeps config, state and logs.
# Jobs still queued or running in the test bed are cancelled first.
set -uo pipefail

TESTBED_DIR="${TESTBED_DIR:-/tmp/fulliautomatix-testbed}"
S="$TESTBED_DIR/slurm"
M="$TESTBED_DIR/munge"
export SLURM_CONF="$S/slurm.conf"

alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# stop PIDFILE NAME: SIGTERM, wait up to 15 s, then SIGKILL
stop() {
    local pf="$1" name="$2" pid
    if alive "$pf"; then
        pid="$(cat "$pf")"
        kill -TERM "$pid" 2>/dev/null
        for _ in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        if kill -0 "$pid" 2>/dev/null; then
            echo "testbed/slurm/down.sh: $name ($pid) ignored SIGTERM; killing"
            kill -KILL "$pid" 2>/dev/null
        fi
        echo "testbed/slurm/down.sh: stopped $name ($pid)"
    fi
    rm -f "$pf"
}

if alive "$S/run/slurmctld.pid" && [ -f "$SLURM_CONF" ]; then
    jobs="$(squeue -h -o %i 2>/dev/null | tr '\n' ' ')"
    if [ -n "${jobs// /}" ]; then
        echo "testbed/slurm/down.sh: cancelling jobs: $jobs"
        scancel $jobs 2>/dev/null
        for _ in $(seq 30); do
            [ -z "$(squeue -h -o %i -t PD,R,CG,S 2>/dev/null)" ] && break
            sleep 0.5
        done
    fi
fi

stop "$S/run/slurmctld.pid" slurmctld
stop "$S/run/slurmd.pid" slurmd
stop "$M/munged.pid" munged

# Job steps outlive slurmd. Ours run with their cwd in our log directory: kill any
# left (e.g. after an unclean stop) together with their job processes.
descendants() { local c; for c in $(pgrep -P "$1"); do echo "$c"; descendants "$c"; done; }
for p in $(pgrep -x slurmstepd); do
    [ "$(readlink "/proc/$p/cwd" 2>/dev/null)" = "$S/log" ] || continue
    victims="$p $(descendants "$p" | tr '\n' ' ')"
    kill -KILL $victims 2>/dev/null
    echo "testbed/slurm/down.sh: killed stray job step processes: $victims"
done
exit 0
