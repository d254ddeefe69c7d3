#!/usr/bin/env bash
# Stop the ssh test bed started by up.sh.  Idempotent.
#
# For each host it ends the listening sshd (by its pid file) *and* every
# process still living in that sshd's private mount namespace (open sessions,
# commands they started); once they are gone the namespace is gone too.
#
#   down.sh          stop; keep keys, configs and the hosts' data
#   down.sh --purge  stop and delete this test bed's files ($TESTBED_DIR/ssh and /hosts;
#                    the scheduler test bed in $TESTBED_DIR/slurm is left alone)
set -euo pipefail

TESTBED_DIR="${TESTBED_DIR:-/tmp/fulliautomatix-testbed}"
S="$TESTBED_DIR/ssh"
purge=
case "${1:-}" in
  --purge) purge=1;;
  "") ;;
  *) echo "usage: $0 [--purge]" >&2; exit 2;;
esac

stop_host() {  # $1 = host
  local pidf="$S/sshd_$1.pid" pid ns p alive members=()
  [ -s "$pidf" ] || { rm -f "$pidf"; return 0; }
  pid="$(cat "$pidf")"
  if [ ! -d "/proc/$pid" ] || [ "$(cat "/proc/$pid/comm" 2>/dev/null)" != sshd ]; then
    rm -f "$pidf"; return 0          # stale pid file
  fi
  ns="$(readlink "/proc/$pid/ns/mnt" || true)"
  # The namespace is only ours if it differs from the one we run in.
  if [ -n "$ns" ] && [ "$ns" != "$(readlink /proc/self/ns/mnt)" ]; then
    for p in /proc/[0-9]*; do
      p="${p#/proc/}"
      [ "$p" = "$pid" ] && continue
      [ "$(readlink "/proc/$p/ns/mnt" 2>/dev/null)" = "$ns" ] && members+=("$p")
    done
  fi
  kill -TERM "$pid" "${members[@]}" 2>/dev/null || true
  for _ in $(seq 1 50); do
    alive=
    for p in "$pid" "${members[@]}"; do kill -0 "$p" 2>/dev/null && { alive=1; break; }; done
    [ -n "$alive" ] || break
    sleep 0.1
  done
  kill -KILL "$pid" "${members[@]}" 2>/dev/null || true
  rm -f "$pidf"
  echo "down.sh: stopped fa-$1 (pid $pid${members:+, +${#members[@]} session processes})" >&2
}

for h in daq cluster; do stop_host "$h"; done

if [ -n "$purge" ]; then
  rm -rf -- "$TESTBED_DIR/ssh" "$TESTBED_DIR/hosts"
  echo "down.sh: removed $TESTBED_DIR" >&2
fi
