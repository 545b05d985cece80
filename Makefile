# tradeops: `make demo` runs the product on one machine; `make test` runs every test.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export TRADEOPS_DOCKER_HOST ?= unix:///run/tradeops-docker/docker.sock

.PHONY: test lint typecheck unit prereqs venv demo bench generate clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	@touch $(STAMP)

venv: $(STAMP)

prereqs:
	@bash scripts/prereqs.sh

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

test: $(STAMP) prereqs lint typecheck
	$(BIN)/pytest $(PYTEST_ARGS)

unit: $(STAMP)
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

demo: $(STAMP) prereqs
	$(BIN)/python -m sandbox.demo $(ARGS)

bench: $(STAMP)
	@TRADEOPS_BENCH=1 bash scripts/prereqs.sh
	@for script in bench/[!_]*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

generate: $(STAMP)
	$(BIN)/python -m tools.dashboards
	$(BIN)/python -m tools.deploy

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .pytest_cache .ruff_cache
