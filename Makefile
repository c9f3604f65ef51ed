# Two commands on a fresh machine with Python 3.11+ and make: `make demo`, `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PACKAGES := contracts/src/task_contracts server/src/task_server client/src/task_client
# The official AsyncAPI JSON Schemas (npm @asyncapi/specs), used by the tests that validate exports.
ASYNCAPI_SPECS := $(VENV)/npm/node_modules/@asyncapi/specs/package.json

.PHONY: install demo test test-e2e bench build lint docs clean

install: $(STAMP) $(ASYNCAPI_SPECS)

$(STAMP): pyproject.toml contracts/pyproject.toml server/pyproject.toml client/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=25.1"
	$(BIN)/python -m pip install --quiet -e ./contracts -e "./server[embedded,metrics,otel]" -e "./client[otel]" --group dev
	touch $(STAMP)

$(ASYNCAPI_SPECS): $(STAMP)
	npm install --silent --no-save --no-package-lock --no-audit --no-fund --prefix $(VENV)/npm @asyncapi/specs@6.11.1
	touch $@

demo: $(STAMP)
	$(BIN)/python examples/demo.py

test: $(STAMP) $(ASYNCAPI_SPECS)
	$(BIN)/python -m pytest

test-e2e: $(STAMP)
	$(BIN)/python -m pytest -m e2e

bench: $(STAMP)
	$(BIN)/python -m bench

build: $(STAMP)
	rm -rf dist
	$(BIN)/hatch build --all

lint: $(STAMP)
	$(BIN)/ruff check $(PACKAGES) tests examples bench
	$(BIN)/ruff format --check $(PACKAGES) tests examples bench
	$(BIN)/mypy $(PACKAGES)

docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

clean:
	rm -rf $(VENV) dist site .pytest_cache .mypy_cache .ruff_cache
