# Contract stubs have no body by design.
# mypy: disable-error-code="empty-body"
"""A newer `math.add` with an optional parameter, served to callers generated from the older one."""

from __future__ import annotations

from task_contracts import ContractCatalog, contract
from task_server import implements


@contract(name="math.add", queue="math", timeout=10, idempotent=True, cpu_bound=False)
def add(x: int, y: int, z: int = 100) -> int:
    """Return x + y + z."""
    ...


@implements(add)
def add_impl(x: int, y: int, z: int = 100) -> int:
    return x + y + z


CATALOG = ContractCatalog(add)
