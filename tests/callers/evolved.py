"""Newer contracts served to callers generated from the older ones: `math.add` gained an optional
parameter (compatible: the older caller is answered), `math.mul` a required one and `math.stats`
lost a result field (both breaking: the caller gets `ContractMismatch`)."""

from __future__ import annotations

import pydantic

from task_contracts import ContractCatalog, contract
from task_server import implements


class Count(pydantic.BaseModel):
    count: int


@contract(name="math.add", queue="math", timeout=10, idempotent=True, cpu_bound=False)
def add(x: int, y: int, z: int = 100) -> int:
    """Return x + y + z."""
    raise NotImplementedError


@contract(name="math.mul", queue="math", timeout=10, idempotent=True, cpu_bound=False)
def mul(x: int, y: int, z: int) -> int:
    """Return x * y * z."""
    raise NotImplementedError


@contract(name="math.stats", queue="math", timeout=10, idempotent=True, cpu_bound=False)
def stats(numbers: list[float]) -> Count:
    """Return how many numbers there are (no total any more)."""
    raise NotImplementedError


@implements(add)
def add_impl(x: int, y: int, z: int = 100) -> int:
    return x + y + z


@implements(mul)
def mul_impl(x: int, y: int, z: int) -> int:
    return x * y * z


@implements(stats)
def stats_impl(numbers: list[float]) -> Count:
    return Count(count=len(numbers))


CATALOG = ContractCatalog(add, mul, stats)
