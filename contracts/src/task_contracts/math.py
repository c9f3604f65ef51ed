"""Arithmetic tasks from the Celery tutorial, served on the `math` queue.

Each takes microseconds of CPU, so they are declared `cpu_bound=False`: a worker serves them from
threads of its main process, without a hop to a pool process. `math.add` also declares
`on_event_loop=True`: an addition of two integers (at most a 1 MB message) returns in microseconds
and waits on nothing, so a worker runs it on its event loop, without even the hand-off to a thread
(the round trip `make bench` measures). `math.mul` does not: multiplying two huge integers can take
seconds.
"""

from __future__ import annotations

import pydantic

from ._contract import contract


class Stats(pydantic.BaseModel):
    """A summary of a list of numbers (the result of `math.stats`)."""

    count: int
    total: float


@contract(name="math.add", queue="math", timeout=10, idempotent=True, cpu_bound=False, on_event_loop=True)
def add(x: int, y: int) -> int:
    """Return x + y."""
    raise NotImplementedError


@contract(name="math.mul", queue="math", timeout=10, idempotent=True, cpu_bound=False)
def mul(x: int, y: int) -> int:
    """Return x * y."""
    raise NotImplementedError


@contract(name="math.xsum", queue="math", timeout=10, idempotent=True, cpu_bound=False)
def xsum(numbers: list[int]) -> int:
    """Return the sum of a list of integers."""
    raise NotImplementedError


@contract(name="math.div", queue="math", timeout=10, idempotent=True, cpu_bound=False)
def div(x: float, y: float) -> float:
    """Return x / y; fails on the worker with ZeroDivisionError when y is 0."""
    raise NotImplementedError


@contract(name="math.stats", queue="math", timeout=10, idempotent=True, cpu_bound=False)
def stats(numbers: list[float]) -> Stats:
    """Return how many numbers there are and their total."""
    raise NotImplementedError
