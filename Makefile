# The README's commands. Everything runs inside .venv, created from requirements.lock on first use.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.8
# dvc.yaml's stage commands call `powerops`: the environment's bin comes first on PATH.
export PATH := $(CURDIR)/$(BIN):$(PATH)
export DVC_NO_ANALYTICS := 1
# No usage data leaves the machine (MLflow, Great Expectations).
export MLFLOW_DISABLE_TELEMETRY := true
export DO_NOT_TRACK := true
export GX_ANALYTICS_ENABLED := False

.PHONY: demo demo-dvc up down test test-fast test-cluster lint typecheck bench-ingest bench-validate bench-train bench-orchestration bench-drift bench-serve bench-predictionlog bench-forecast bench-opsview lock clean-venv

# The stamp is newer than the lock only when the environment matches it.
$(VENV)/.installed: requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(BIN)/uv pip sync --python $(BIN)/python --compile-bytecode requirements.lock
	$(BIN)/uv pip install --python $(BIN)/python --no-deps --compile-bytecode -e .
	@touch $@

# Replay the months in params.yaml through the Airflow DAGs (dag.test, embedded SQLite), then
# print the catalog and the summary.
demo: $(VENV)/.installed
	$(BIN)/python scripts/airflow_demo.py
	$(BIN)/powerops catalog show

# The same pipeline through `dvc repro` instead of Airflow.
demo-dvc: $(VENV)/.installed
	$(BIN)/dvc repro
	$(BIN)/dvc push --quiet
	$(BIN)/powerops catalog show
	$(BIN)/powerops testset show
	$(BIN)/powerops model list

# The UIs: Airflow on 127.0.0.1:8080 and MLflow on 127.0.0.1:5000. `make down` stops them.
up: $(VENV)/.installed
	$(BIN)/powerops up

down: $(VENV)/.installed
	$(BIN)/powerops down

lint: $(VENV)/.installed
	$(BIN)/ruff check src tests bench dags scripts plugins examples
	$(BIN)/ruff format --check src tests bench dags scripts plugins examples

typecheck: $(VENV)/.installed
	$(BIN)/mypy

test: lint typecheck
	$(BIN)/pytest

# The inner loop: lint, types and every test not marked slow (the end-to-end ones through the
# real stack, which `make test` and CI still run).
test-fast: lint typecheck
	$(BIN)/pytest -m "not slow" --durations=5

# The cluster profile against real PostgreSQL and Redis servers (Debian's packages, installed
# by scripts/cluster_packages.sh when missing; started and stopped by the tests).
test-cluster: $(VENV)/.installed
	$(BIN)/pytest -o addopts="-ra --strict-markers --durations=12" tests/cluster

bench-ingest: $(VENV)/.installed
	$(BIN)/python bench/ingest.py

bench-validate: $(VENV)/.installed
	$(BIN)/python bench/validate.py

bench-train: $(VENV)/.installed
	$(BIN)/python bench/train.py

bench-orchestration: $(VENV)/.installed
	$(BIN)/python bench/orchestration.py

bench-drift: $(VENV)/.installed
	$(BIN)/python bench/drift.py

bench-serve: $(VENV)/.installed
	$(BIN)/python bench/serve.py

bench-predictionlog: $(VENV)/.installed
	$(BIN)/python bench/predictionlog.py

bench-forecast: $(VENV)/.installed
	$(BIN)/python bench/forecast.py

bench-opsview: $(VENV)/.installed
	$(BIN)/python bench/opsview.py

# Re-resolve the lock after changing dependencies in pyproject.toml.
lock:
	uv pip compile pyproject.toml --extra dev --extra cluster --python-version 3.11 \
	  --python-platform x86_64-unknown-linux-gnu -o requirements.lock

clean-venv:
	rm -rf $(VENV)
