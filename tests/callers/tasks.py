"""The implementation of `callers.describe` (tests only)."""

from __future__ import annotations

from task_server import implements

from . import contracts


@implements(contracts.describe)
def describe(
    count: contracts.Count,
    unit: contracts.Unit,
    tag: contracts.Tag,
    points: list[contracts.Point],
    flags: dict[str, bool],
    scale: float | None = None,
    loud: bool = False,
) -> contracts.Described:
    text = f"{count} {unit} {tag} {len(points)} points"
    return contracts.Described(
        text=text.upper() if loud else text, count=count, points=points, flags=flags, scale=scale
    )
