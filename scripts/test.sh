#!/usr/bin/env bash
# The whole suite: unit tests, then integration tests against real nx-27017,
# rsync, tar, zstd and Snakemake. Each test starts the servers it needs.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/ruff check src tests benchmarks workflow/scripts setup.py
.venv/bin/python scripts/check_shape.py   # module and function length, import cycles
.venv/bin/python -m pytest -q "$@"
