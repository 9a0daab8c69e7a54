# ATOM — the two commands the README promises, on a machine with Python 3.11+ and make.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PORT   ?= $(or $(ATOM_PORT),3000)

.PHONY: run test install lint api clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "ATOM needs Python 3.11+ (found: $$($(PYTHON) --version))"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## run: migrate, seed the demo tenant, build and serve the dashboard + API on 127.0.0.1:$(PORT)
## (ATOM_HOST=0.0.0.0 to serve beyond this machine); prints one URL once it answers
run: install
	@$(BIN)/atom db upgrade >/dev/null
	@$(BIN)/atom seed --demo
	@echo "the CLI: source $(BIN)/activate, then atom --help"
	@$(BIN)/atom serve --port $(PORT)

## test: the whole suite; server mode on throwaway PostgreSQL/Redis unless ATOM_TEST_* name running
## ones (CI requires those); only the browser tests skip, when no Chromium is installed
test: install
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check .

## api: the REST API alone, no dashboard build
api: install
	$(BIN)/atom db upgrade
	$(BIN)/atom api --port $(PORT)

clean:
	rm -rf .web .pytest_cache .ruff_cache

## bench: workflow engine vs LangGraph (installs the `bench` extra); BENCH_ARGS="--profile" or
## BENCH_ARGS="--distributed --database-url ... --admin-url ... --redis-url ..." (see the script's docstring)
.PHONY: bench
bench: install
	$(BIN)/python -c 'import langgraph.checkpoint.sqlite' 2>/dev/null || $(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	$(BIN)/python benchmarks/workflow_overhead.py $(BENCH_ARGS)
