"""Contracts that exercise what the generated callers must say: models in and out, optionals and
defaults, dicts, bools, and constraints the languages' types cannot say (bounds, a pattern, a
literal). `callers.unserved` has no implementation, and `callers.idle` sits on a queue no worker
consumes, with a 1 s bound."""

from __future__ import annotations

from typing import Annotated, Literal

import pydantic

from task_contracts import CATALOG as SHIPPED
from task_contracts import ContractCatalog, contract


class Point(pydantic.BaseModel):
    """A labelled point."""

    x: float
    y: float
    label: str | None = None


class Described(pydantic.BaseModel):
    """What `callers.describe` says about its arguments."""

    text: str
    count: int
    points: list[Point]
    flags: dict[str, bool]
    scale: float | None


Count = Annotated[int, pydantic.Field(ge=0, le=100)]
Unit = Literal["cm", "in"]
Tag = Annotated[str, pydantic.Field(pattern=r"^[a-z]+$", max_length=8)]


@contract(name="callers.describe", queue="callers", timeout=10, idempotent=True, cpu_bound=False)
def describe(
    count: Count,
    unit: Unit,
    tag: Tag,
    points: list[Point],
    flags: dict[str, bool],
    scale: float | None = None,
    loud: bool = False,
) -> Described:
    """Describe the arguments in one line of text.

    `count` is 0 to 100, `tag` lowercase letters (at most 8).
    """
    raise NotImplementedError


@contract(name="callers.unserved", queue="callers", timeout=10, idempotent=True, cpu_bound=False)
def unserved(x: int) -> int:
    """Declared for callers, implemented by no worker."""
    raise NotImplementedError


@contract(name="callers.idle", queue="callers-idle", timeout=1, idempotent=True, cpu_bound=False)
def idle(x: int) -> int:
    """On a queue no worker consumes, with a 1 s bound."""
    raise NotImplementedError


#: What the callers are generated from.
CALLERS = ContractCatalog(*SHIPPED, describe, unserved, idle)
#: What the test worker serves: no `callers.unserved`, and `callers-idle` is not consumed.
SERVED = ContractCatalog(*SHIPPED, describe)
