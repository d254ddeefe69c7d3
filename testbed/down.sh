#!/usr/bin/env bash
# Stop every test bed (make testbed-down). Idempotent.
#   down.sh          stop; keep keys, configs and the hosts' data
#   down.sh --purge  stop and delete $TESTBED_DIR entirely
# The scheduler goes first: the ssh test bed's --purge removes the whole $TESTBED_DIR.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
if [ -f "$here/slurm/down.sh" ]; then
  bash "$here/slurm/down.sh"
fi
bash "$here/ssh/down.sh" "$@"
