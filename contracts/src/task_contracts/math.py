# Contract stubs have no body by design.
# mypy: disable-error-code="empty-body"
"""Arithmetic tasks from the Celery tutorial, served on the `math` queue."""

from __future__ import annotations

from ._contract import contract


@contract(name="math.add", queue="math", timeout=10, idempotent=True)
def add(x: int, y: int) -> int:
    """Return x + y."""
    ...


@contract(name="math.mul", queue="math", timeout=10, idempotent=True)
def mul(x: int, y: int) -> int:
    """Return x * y."""
    ...


@contract(name="math.xsum", queue="math", timeout=10, idempotent=True)
def xsum(numbers: list[int]) -> int:
    """Return the sum of a list of integers."""
    ...


@contract(name="math.div", queue="math", timeout=10, idempotent=True)
def div(x: float, y: float) -> float:
    """Return x / y; fails on the worker with ZeroDivisionError when y is 0."""
    ...
