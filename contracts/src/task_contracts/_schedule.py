"""Periodic schedules, declared beside the contracts and run by `task-server beat`.

A schedule is data: which contract, with which arguments, how often. Nothing here runs it or
depends on Celery; `problems` checks a schedule against a catalog so that a beat refuses to start
on a schedule that could never succeed, instead of firing calls that every worker rejects.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from ._catalog import ContractCatalog
from ._contract import Contract
from ._errors import ArgumentsError, ContractDeclarationError

_CRON_FIELDS = ("minute", "hour", "day_of_month", "month_of_year", "day_of_week")


@dataclass(frozen=True)
class Crontab:
    """Celery's crontab fields, evaluated in UTC. `Crontab.parse("*/5 * * * *")` reads the usual five fields."""

    minute: str = "*"
    hour: str = "*"
    day_of_month: str = "*"
    month_of_year: str = "*"
    day_of_week: str = "*"

    @classmethod
    def parse(cls, expression: str) -> Crontab:
        """`minute hour day-of-month month day-of-week`, as in a crontab line."""
        parts = expression.split()
        if len(parts) != len(_CRON_FIELDS):
            raise ValueError(
                f"cron expression {expression!r} has {len(parts)} fields; expected 5 "
                "(minute hour day-of-month month day-of-week)"
            )
        return cls(*parts)

    def fields(self) -> dict[str, str]:
        """The fields by Celery's names, ready for `celery.schedules.crontab(**fields)`."""
        return {name: getattr(self, name) for name in _CRON_FIELDS}

    def __str__(self) -> str:
        return " ".join(self.fields().values())


@dataclass(frozen=True)
class Schedule:
    """Call `contract` periodically: `every` (a `timedelta` or seconds) or on a `cron` timetable.

    >>> Schedule(math.add, args=(1, 2), every=timedelta(seconds=30))
    >>> Schedule(math.xsum, args=([1, 2],), cron="*/5 * * * *", name="sum every five minutes")

    `name` identifies the schedule (default: the wire name and the timing); `queue` overrides the
    contract's queue. Arguments are checked against the contract when `task-server beat` starts.
    """

    contract: Contract[..., Any]
    args: Sequence[Any] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    every: timedelta | float | None = None
    cron: str | Crontab | None = None
    name: str = ""
    queue: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.contract, Contract):
            raise ContractDeclarationError(f"Schedule needs a Contract, got {type(self.contract).__name__}")
        if (self.every is None) == (self.cron is None):
            raise ContractDeclarationError(f"schedule of {self.contract.name}: give exactly one of every= or cron=")
        if not self.name:
            timing = f"every {self.interval:g} s" if self.every is not None else f"cron {self.cron}"
            object.__setattr__(self, "name", f"{self.contract.name} {timing}")

    @property
    def interval(self) -> float:
        """Seconds between runs of an `every` schedule (0.0 for a cron schedule)."""
        if isinstance(self.every, timedelta):
            return self.every.total_seconds()
        return float(self.every or 0.0)

    def crontab(self) -> Crontab | None:
        """The cron timetable, parsed; `ValueError` if the expression is malformed."""
        if self.cron is None or isinstance(self.cron, Crontab):
            return self.cron
        return Crontab.parse(self.cron)

    def wire_arguments(self) -> tuple[list[Any], dict[str, Any]]:
        """The arguments as they travel, validated against the contract (`ArgumentsError` if not)."""
        return self.contract.encode_arguments(self.args, self.kwargs)

    def problems(self, catalog: ContractCatalog) -> list[str]:
        """Why this schedule cannot run against `catalog`, one line each, or an empty list."""
        problems = []
        served = catalog.get(self.contract.name)
        if served is None:
            problems.append(f"{self.contract.name} is not in the contract catalog")
        elif served.fingerprint != self.contract.fingerprint:
            problems.append(f"{self.contract.name} is another version of the catalog's contract (fingerprint differs)")
        try:
            self.wire_arguments()
        except ArgumentsError as error:
            problems.extend(error.problems)
        if self.every is not None and not self.interval > 0:
            problems.append(f"every= must be positive, got {self.every!r}")
        try:
            self.crontab()
        except ValueError as error:
            problems.append(str(error))
        return problems


def schedule_problems(schedules: Iterable[Schedule], catalog: ContractCatalog) -> list[str]:
    """Every problem of every schedule, each line naming its schedule; also names shared by two schedules."""
    problems: list[str] = []
    seen: set[str] = set()
    for item in schedules:
        if not isinstance(item, Schedule):
            problems.append(f"{item!r}: not a Schedule")
            continue
        if item.name in seen:
            problems.append(f"schedule {item.name!r}: two schedules share this name; give one a name=")
        seen.add(item.name)
        problems.extend(f"schedule {item.name!r}: {problem}" for problem in item.problems(catalog))
    return problems
