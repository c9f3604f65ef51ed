"""The catalog the test suite serves: the shipped contracts plus test-only diagnostic tasks.

Test workers run with `--catalog tests.catalog:CATALOG` and the implementations in
`IMPLEMENTATIONS` (see `worker_args`); tests call the diagnostic tasks with
`client.task(diagnostics.sleep)`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from task_contracts import CATALOG as SHIPPED
from task_contracts import ContractCatalog

from . import contracts as diagnostics

CATALOG = ContractCatalog(*SHIPPED, *ContractCatalog.from_modules(diagnostics))
SPEC = "tests.catalog:CATALOG"
IMPLEMENTATIONS = ("task_server.tasks", "tests.catalog.tasks")


REPO_ROOT = Path(__file__).resolve().parents[2]


def serving(env: dict[str, str] | None = None) -> dict[str, Any]:
    """`WorkerProcess` keyword arguments that serve this catalog (the repository on PYTHONPATH, so
    the worker process imports `tests.catalog` from any working directory)."""
    return {
        "catalog": SPEC,
        "implementations": IMPLEMENTATIONS,
        "env": {"PYTHONPATH": str(REPO_ROOT), **(env or {})},
    }
