#!/usr/bin/env bash
# The whole suite: unit tests, then integration tests against real nx-27017,
# rsync, tar, zstd and Snakemake. Each test starts the servers it needs.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/ruff check src tests benchmarks workflow/scripts setup.py
.venv/bin/python scripts/check_shape.py   # module and function length, import cycles
# Two workers (PYTEST_WORKERS): a tick mostly waits on processes, so two share 2 cores well.
# The Slurm tests stay on one worker (tests/conftest.py: xdist_group), as they share one scheduler.
.venv/bin/python -m pytest -q -n "${PYTEST_WORKERS:-2}" --dist loadgroup "$@"
