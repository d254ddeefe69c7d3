# Fulliautomatix: `make demo` shows a run's whole life; `make test` runs the suite.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
FA := $(VENV)/bin/fulliautomatix
DEMO_RUNS ?= 8

.PHONY: demo test lint bench install system-deps testbed-up testbed-down clean soak schema

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,slurm]'
	touch $@

install: $(VENV)/.installed

# rsync, zstd and tar are the tools the stages run; xxhash gives xxh128sum for
# transfer checksums (sha256sum is the fallback). Installed with apt as root.
system-deps:
	@bash scripts/system-deps.sh rsync zstd xxhash

# Ends with `fulliautomatix report`: it writes the operators' page (each tick does too) and prints where it is.
demo: install system-deps
	$(FA) simulate-daq --runs $(DEMO_RUNS)
	@for i in 1 2 3 4 5 6; do \
	  $(FA) || exit 1; \
	  $(FA) status --check >/dev/null && break; \
	done
	$(FA) status
	$(FA) report

test: install system-deps
	bash scripts/test.sh

# ruff check includes C901 (complexity at most 15, pyproject.toml); check_shape: module and
# function length, import cycles; then the formatters, checking only.
lint: install
	$(VENV)/bin/ruff check src tests benchmarks workflow/scripts setup.py
	$(PY) scripts/check_shape.py
	$(PY) scripts/schema_json.py --check
	$(VENV)/bin/ruff format --check src tests benchmarks workflow/scripts setup.py scripts
	$(VENV)/bin/snakefmt --check workflow
	$(VENV)/bin/snakemake --lint --snakefile workflow/Snakefile

# The config schema is edited in YAML; validation reads its JSON twin (scripts/schema_json.py says why).
schema: install
	$(PY) scripts/schema_json.py

# The chaos run (tests/soak): 50 runs, faults at random moments, invariants after every tick, at most
# 10 minutes; e.g. `make soak SOAK_ARGS="--seed 3 --runs 20 --minutes 4"`.
soak: install system-deps
	$(PY) -m tests.soak.soak $(SOAK_ARGS)

bench: install system-deps
	$(PY) -m benchmarks

testbed-up: system-deps
	bash testbed/up.sh

testbed-down:
	bash testbed/down.sh

clean:
	rm -rf data .snakemake
