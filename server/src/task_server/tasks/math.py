"""Implementations of `task_contracts.math`."""

from __future__ import annotations

from task_contracts import math

from .._registry import implements


@implements(math.add)
def add(x: int, y: int) -> int:
    return x + y


@implements(math.mul)
def mul(x: int, y: int) -> int:
    return x * y


@implements(math.xsum)
def xsum(numbers: list[int]) -> int:
    return sum(numbers)


@implements(math.div)
def div(x: float, y: float) -> float:
    return x / y


@implements(math.stats)
def stats(numbers: list[float]) -> math.Stats:
    return math.Stats(count=len(numbers), total=sum(numbers))
