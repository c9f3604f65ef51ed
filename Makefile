# Two commands on a fresh machine with Python 3.11+ and make: `make demo`, `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PACKAGES := contracts/src/task_contracts server/src/task_server client/src/task_client
# npm packages some tests use, installed together (a second `npm install --no-save` would prune the
# first): the official AsyncAPI JSON Schemas, and celery-node, a Node.js producer with Celery's defaults.
ASYNCAPI_SPECS := $(VENV)/npm/node_modules/@asyncapi/specs/package.json
CELERY_NODE := $(VENV)/npm/node_modules/celery-node/package.json
# ioredis, TypeScript and Node's types build and run the generated TypeScript caller (tests/callers).
TYPESCRIPT := $(VENV)/npm/node_modules/typescript/package.json
NPM_PACKAGES := @asyncapi/specs@6.11.1 celery-node@0.5.9 ioredis@5.9.2 typescript@5.9.3 @types/node@20.19.43

# Test processes (pytest-xdist): the suite mostly waits on servers and workers, so more than the cores.
TEST_PROCESSES ?= 4
PYTEST_PARALLEL := -n $(TEST_PROCESSES) --dist loadgroup

.PHONY: install demo system-packages test test-e2e check-compat bench build lint docs clean generate

install: $(STAMP) $(ASYNCAPI_SPECS) $(CELERY_NODE) $(TYPESCRIPT)

$(STAMP): pyproject.toml contracts/pyproject.toml server/pyproject.toml client/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=25.1"
	$(BIN)/python -m pip install --quiet -e ./contracts -e "./server[embedded,metrics,otel]" -e "./client[otel]" --group dev
	touch $(STAMP)

$(ASYNCAPI_SPECS) $(CELERY_NODE) $(TYPESCRIPT) &: $(STAMP)
	npm install --silent --no-save --no-package-lock --no-audit --no-fund --prefix $(VENV)/npm $(NPM_PACKAGES)
	touch $(ASYNCAPI_SPECS) $(CELERY_NODE) $(TYPESCRIPT)

demo: $(STAMP)
	$(BIN)/python examples/demo.py

# The Debian packages the suite needs (scripts/system-packages lists them): installed when run as
# root with apt-get, otherwise named in one line before anything else runs. Listed first, so it runs first.
system-packages:
	scripts/system-packages

# With the packages checked, the TLS test fails rather than skips when it finds no TLS redis-server.
test: system-packages $(STAMP) $(ASYNCAPI_SPECS) $(CELERY_NODE) $(TYPESCRIPT) check-compat
	TASK_REQUIRE_TLS_TEST=1 $(BIN)/python -m pytest $(PYTEST_PARALLEL)

# The contracts of the last release (contracts/released/<version>/) against the current ones: a
# breaking change fails here; the way out is a new major version of the contract.
RELEASED := $(shell ls -d contracts/released/*/ | sort -V | tail -n 1)
check-compat: $(STAMP)
	rm -rf .compat-export && $(BIN)/task-contracts export .compat-export > /dev/null
	$(BIN)/task-contracts diff $(RELEASED) .compat-export

test-e2e: system-packages $(STAMP) $(ASYNCAPI_SPECS) $(CELERY_NODE) $(TYPESCRIPT)
	TASK_REQUIRE_TLS_TEST=1 $(BIN)/python -m pytest $(PYTEST_PARALLEL) -m e2e

# The committed callers of the shipped catalog (tests/callers/test_generate.py fails when they drift).
GENERATED := examples/generated
GENERATE_LANGUAGES := go php typescript
generate: $(STAMP)
	for language in $(GENERATE_LANGUAGES); do \
		rm -rf $(GENERATED)/$$language && \
		$(BIN)/task-contracts generate $$language --out $(GENERATED)/$$language --go-module example.com/tasks > /dev/null || exit 1; \
	done

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
