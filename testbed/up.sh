#!/usr/bin/env bash
# Start every test bed (make testbed-up): the ssh hosts fa-daq and fa-cluster
# (testbed/ssh) and, where present, the Slurm cluster (testbed/slurm).
# Idempotent; as root (both install what they need with apt). config/testbed.yaml uses them.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bash "$here/ssh/up.sh"
if [ -f "$here/slurm/up.sh" ]; then
  bash "$here/slurm/up.sh"
fi
