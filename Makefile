# Two entry points: `make demo` and `make test`. Both build their own .venv from pyproject.toml.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test lint typecheck pytest bench clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.runtime: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	@touch $@

$(VENV)/.dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[dev,bench]'
	@touch $@ $(VENV)/.runtime

demo: $(VENV)/.runtime
	$(BIN)/race-gateway demo

lint: $(VENV)/.dev
	$(BIN)/ruff check gateway tests bench
	$(BIN)/ruff format --check gateway tests bench

typecheck: $(VENV)/.dev
	$(BIN)/mypy gateway

pytest: $(VENV)/.dev
	bash scripts/with-redis.sh $(BIN)/python -m pytest

test: lint typecheck pytest

bench: $(VENV)/.dev
	$(BIN)/python -m bench.overhead

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
