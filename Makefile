# tradeops: `make demo` runs the product on one machine; `make test` runs every test.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Every package `make test` installs, pinned with hashes; `make lock` is the one command that refreshes it
# (after a change to pyproject.toml's dependencies), `make lock UPGRADE=1` moves every pin to the newest release.
LOCK := requirements/lock.txt
UV_VERSION := 0.13.9
LOCK_TOOLS := .venv-lock
export TRADEOPS_DOCKER_HOST ?= unix:///run/tradeops-docker/docker.sock

.PHONY: test lint typecheck unit prereqs venv lock demo bench generate clean

$(STAMP): $(LOCK) pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --require-hashes -r $(LOCK)
	$(BIN)/python -m pip install -q --no-deps -e .
	@$(BIN)/python -m pip check >/dev/null || { $(BIN)/python -m pip check; \
		echo "$(LOCK) does not satisfy pyproject.toml: run 'make lock' and commit it" >&2; exit 1; }
	@touch $(STAMP)

venv: $(STAMP)

lock:
	@test -x $(LOCK_TOOLS)/bin/uv && $(LOCK_TOOLS)/bin/uv --version | grep -qx 'uv $(UV_VERSION)' \
		|| { $(PYTHON) -m venv $(LOCK_TOOLS) && $(LOCK_TOOLS)/bin/python -m pip install -q 'uv==$(UV_VERSION)'; }
	$(LOCK_TOOLS)/bin/uv pip compile pyproject.toml --extra test --universal --python-version 3.11 \
		--generate-hashes --no-emit-package tradeops --custom-compile-command 'make lock' \
		$(if $(UPGRADE),--upgrade) --quiet -o $(LOCK)

prereqs:
	@bash scripts/prereqs.sh

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

# Branch coverage of exporter, remediator and common, subprocesses included ([tool.coverage] in pyproject.toml):
# the report is printed, and pytest fails below fail_under (for a subset of the tests: make test PYTEST_ARGS="--no-cov ...").
# The whole suite runs in two passes: the unit and integration tests one at a time, then the e2e tests on
# E2E_WORKERS workers, each with its own PostgreSQL and RabbitMQ (tests/e2e/conftest.py); an e2e stack mostly
# waits on Prometheus' and Alertmanager's clocks, so two side by side take about half the time of one after the other.
E2E_WORKERS ?= 2
test: $(STAMP) prereqs lint typecheck
ifeq ($(strip $(PYTEST_ARGS)),)
	$(BIN)/pytest --cov --cov-report= --cov-fail-under=0 -m "not e2e"
	$(BIN)/pytest --cov --cov-append -m e2e -n $(E2E_WORKERS)
else
	$(BIN)/pytest --cov $(PYTEST_ARGS)
endif
	@for package in exporter remediator common; do \
	  $(BIN)/coverage report --include="$$package/*" --fail-under=90 --format=total >/dev/null \
	    || { echo "coverage of $$package is below 90 %"; exit 1; }; \
	  echo "coverage of $$package: $$($(BIN)/coverage report --include="$$package/*" --format=total) %"; \
	done

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
	rm -rf $(VENV) $(LOCK_TOOLS) build *.egg-info .mypy_cache .pytest_cache .ruff_cache .coverage .coverage.*
