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

# Test processes (pytest-xdist): more than the cores, since many tests wait on servers and workers.
# On this 2-core machine, quiet: 4 processes 358 s, 6 processes 337 s (CPU then busy ~99% of the run).
TEST_PROCESSES ?= 6
PYTEST_PARALLEL := -n $(TEST_PROCESSES) --dist loadgroup

.PHONY: install lock demo system-packages test test-e2e test-lowest check-compat bench build lint docs clean generate

install: $(STAMP) $(ASYNCAPI_SPECS) $(CELERY_NODE) $(TYPESCRIPT)

# Pinned by requirements-dev.lock (constraints), so every machine and CI install the same versions.
# uv (itself pinned there) installs them: 9 s here against pip's 30 s and more, on every fresh clone.
# Compiled to bytecode at install, as pip does: without it each test process started by the suite
# imports Celery from source (0.6 s of CPU more per start; the suite ran 333 s -> 469 s).
UV_VERSION := $(shell sed -n 's/^uv==//p' requirements-dev.lock)
$(STAMP): pyproject.toml contracts/pyproject.toml server/pyproject.toml client/pyproject.toml requirements-dev.in requirements-dev.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet "uv==$(UV_VERSION)"
	$(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python -r requirements-dev.in --group pyproject.toml:dev -c requirements-dev.lock
	touch $(STAMP)

# The newest versions the declared ranges allow, for every platform and Python from 3.11.
lock: $(STAMP)
	$(BIN)/uv pip compile --quiet --upgrade --universal --python-version 3.11 --group pyproject.toml:dev \
		--no-emit-package task-contracts --no-emit-package task-server --no-emit-package task-client \
		requirements-dev.in -o requirements-dev.lock

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
# The project's own sources compiled first: with PYTHONDONTWRITEBYTECODE set (as on CI machines) each of the
# suite's hundreds of worker and CLI processes would otherwise compile them again.
# Test modules are compiled by pytest's assertion rewriting, which caches nothing when bytecode writing
# is off: collected once first with it on, so that each test process loads them (~4 s of CPU each).
test: system-packages $(STAMP) $(ASYNCAPI_SPECS) $(CELERY_NODE) $(TYPESCRIPT) check-compat
	$(BIN)/python -m compileall -q $(PACKAGES) tests
	PYTHONDONTWRITEBYTECODE= $(BIN)/python -m pytest --collect-only -q > /dev/null
	TASK_REQUIRE_TLS_TEST=1 PYTHONDONTWRITEBYTECODE= $(BIN)/python -m pytest $(PYTEST_PARALLEL)

# The contracts of the last release (contracts/released/<version>/) against the current ones: a
# breaking change fails here; the way out is a new major version of the contract.
RELEASED := $(shell ls -d contracts/released/*/ | sort -V | tail -n 1)
check-compat: $(STAMP)
	rm -rf .compat-export && $(BIN)/task-contracts export .compat-export > /dev/null
	$(BIN)/task-contracts diff $(RELEASED) .compat-export

test-e2e: system-packages $(STAMP) $(ASYNCAPI_SPECS) $(CELERY_NODE) $(TYPESCRIPT)
	TASK_REQUIRE_TLS_TEST=1 $(BIN)/python -m pytest $(PYTEST_PARALLEL) -m e2e

# The wheels in a fresh virtualenv at the lowest versions their ranges allow (uv's lowest-direct: each
# declared floor), under a core end-to-end subset run from that virtualenv: the declared floors are true.
LOWEST := .venv-lowest
# Less one test of a stock Celery producer: Celery 5.6's own result consumer leaks a socket there (not ours).
LOWEST_SUBSET := tests/server/test_internals.py tests/client/test_private_names.py \
	tests/e2e/test_calls.py tests/e2e/test_batches.py tests/e2e/test_cancel.py \
	tests/e2e/test_reply_readers.py \
	tests/e2e/test_publish_confirmation.py tests/e2e/test_connection_pools.py \
	tests/e2e/test_crash_redelivery.py::test_idempotent_task_runs_again_after_the_whole_worker_is_killed \
	--deselect tests/e2e/test_batches.py::test_any_producer_can_send_a_chunk_and_each_call_is_validated
test-lowest: build
	rm -rf $(LOWEST) && $(BIN)/uv venv --quiet --python $(PYTHON) $(LOWEST)
	$(BIN)/uv pip install --quiet --compile-bytecode --python $(LOWEST)/bin/python --resolution lowest-direct --all-extras \
		-r contracts/pyproject.toml -r server/pyproject.toml -r client/pyproject.toml dist/*.whl
	$(BIN)/uv pip install --quiet --python $(LOWEST)/bin/python -c requirements-dev.lock pytest pytest-timeout
	$(LOWEST)/bin/python -m pytest -p no:cacheprovider $(LOWEST_SUBSET)

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
	rm -rf $(VENV) $(LOWEST) dist site .pytest_cache .mypy_cache .ruff_cache
