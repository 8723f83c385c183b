# Strata: every target sets up .venv first when it is missing or stale.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: setup run test test-all lint fmt bench clean

$(STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@touch $(STAMP)

setup: $(STAMP) ## create .venv and install Strata with its dev tools

run: setup ## start the local stack (etcd, control, tiers, simulator) in the foreground
	$(VENV)/bin/strata up

test: setup ## the suite CI runs: unit, contract, component and e2e (real etcd, real processes)
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

test-all: setup ## everything, including the slow group
	$(PY) -m pytest $(PYTEST_ARGS)

lint: setup ## ruff, mypy, import-linter
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy common control tier1 tier2 bench tests
	$(VENV)/bin/lint-imports

fmt: setup
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: setup ## every benchmark; JSON (and tables) under .strata/bench/
	$(VENV)/bin/strata bench config-propagation
	$(VENV)/bin/strata bench translation
	$(VENV)/bin/strata bench sim
	$(VENV)/bin/strata bench tier1
	$(VENV)/bin/strata bench ratelimit
	$(VENV)/bin/strata bench tier2
	$(VENV)/bin/strata bench tier2-realtime
	$(VENV)/bin/strata bench tier2-relay

clean:
	rm -rf $(VENV) .strata .mypy_cache .ruff_cache .hypothesis
