"""Rows of the benchmark: each figure with its raw-Celery counterpart, ratio and target."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Row:
    """One measured figure. `ratio` is client/raw; `better` says which way is good."""

    name: str
    unit: str
    client: float
    raw: float | None
    better: str  # "lower" or "higher"
    target: float | None = None  # bound on the ratio, or on `client` itself when `raw` is None
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        return None if self.raw in (None, 0) else self.client / self.raw  # type: ignore[operator]

    @property
    def compared(self) -> float:
        """What the target bounds: the ratio, or the client figure when there is no raw side."""
        ratio = self.ratio
        return self.client if ratio is None else ratio

    @property
    def met(self) -> bool | None:
        if self.target is None:
            return None
        return self.compared <= self.target if self.better == "lower" else self.compared >= self.target

    @property
    def miss(self) -> str:
        """By how much a missed target is missed, in percent of the target."""
        if self.met is not False or self.target is None:
            return ""
        return f"missed by {abs(self.compared - self.target) / self.target:.0%}"

    def as_dict(self) -> dict[str, Any]:
        ratio = self.ratio
        return {
            "row": self.name,
            "unit": self.unit,
            "client": round(self.client, 4),
            "raw": None if self.raw is None else round(self.raw, 4),
            "ratio_client_over_raw": None if ratio is None else round(ratio, 3),
            "better": self.better,
            "target": None if self.target is None else f"{'<=' if self.better == 'lower' else '>='} {self.target:g}",
            "met": self.met,
            "miss": self.miss or None,
            **({"detail": self.detail} if self.detail else {}),
        }


def table(rows: list[Row]) -> str:
    header = f"{'row':<58} {'unit':<9} {'raw':>10} {'client':>10} {'client/raw':>10}  target    met"
    lines = [header, "-" * len(header)]
    for row in rows:
        raw = "" if row.raw is None else f"{row.raw:.4g}"
        ratio = "" if row.ratio is None else f"{row.ratio:.3f}"
        target = "" if row.target is None else f"{'<=' if row.better == 'lower' else '>='} {row.target:g}"
        met = "" if row.met is None else ("yes" if row.met else f"NO ({row.miss})")
        lines.append(f"{row.name:<58} {row.unit:<9} {raw:>10} {row.client:>10.4g} {ratio:>10}  {target:<9} {met}")
    return "\n".join(lines)
