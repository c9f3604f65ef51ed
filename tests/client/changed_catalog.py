# Contract stubs have no body by design.
# mypy: disable-error-code="empty-body"
"""A client catalog that disagrees with the workers: another `math.add`, and a contract nobody serves."""

from __future__ import annotations

from task_contracts import ContractCatalog, contract, math


@contract(name="math.add", queue="math", timeout=10, idempotent=True)
def add(x: int, y: int, z: int = 0) -> int:
    """Return x + y + z (a newer version than the workers')."""
    ...


@contract(name="math.sub", queue="math", timeout=10)
def sub(x: int, y: int) -> int:
    """Return x - y (no worker implements it)."""
    ...


CATALOG = ContractCatalog(add, sub, math.mul)
COMPATIBLE = ContractCatalog(add, math.mul)  # a clients-first rollout: only a new optional parameter
