# The README's commands. Everything runs inside .venv, created from requirements.lock on first use.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.8

.PHONY: demo test lint typecheck bench-ingest lock clean-venv

# The stamp is newer than the lock only when the environment matches it.
$(VENV)/.installed: requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(BIN)/uv pip sync --python $(BIN)/python --compile-bytecode requirements.lock
	$(BIN)/uv pip install --python $(BIN)/python --no-deps --compile-bytecode -e .
	@touch $@

demo: $(VENV)/.installed
	$(BIN)/powerops demo

lint: $(VENV)/.installed
	$(BIN)/ruff check src tests dags plugins bench
	$(BIN)/ruff format --check src tests dags plugins bench

typecheck: $(VENV)/.installed
	$(BIN)/mypy

test: lint typecheck
	$(BIN)/pytest

bench-ingest: $(VENV)/.installed
	$(BIN)/python bench/ingest.py

# Re-resolve the lock after changing dependencies in pyproject.toml.
lock:
	uv pip compile pyproject.toml --extra dev --python-version 3.11 \
	  --python-platform x86_64-unknown-linux-gnu -o requirements.lock

clean-venv:
	rm -rf $(VENV)
