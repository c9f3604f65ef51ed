"""Rows of the benchmark: each figure with its reference (stock Celery, or the echo floor), ratio and target."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Row:
    """One measured figure. `ratio` is ours/reference; `better` says which way is good.

    `target` bounds the ratio, or `ours` itself when there is no reference.
    """

    name: str
    unit: str
    ours: float
    reference: float | None
    better: str  # "lower" or "higher"
    target: float | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    #: Why a missed target was missed, as measured and understood (kept in the table, never dropped).
    note: str = ""

    @property
    def ratio(self) -> float | None:
        return None if self.reference in (None, 0) else self.ours / self.reference  # type: ignore[operator]

    @property
    def compared(self) -> float:
        """What the target bounds: the ratio, or our figure when there is no reference."""
        ratio = self.ratio
        return self.ours if ratio is None else ratio

    @property
    def met(self) -> bool | None:
        if self.target is None:
            return None
        return self.compared <= self.target if self.better == "lower" else self.compared >= self.target

    @property
    def target_text(self) -> str:
        if self.target is None:
            return ""
        unit = "" if self.reference is not None else f" {self.unit}"  # a bound on the figure itself
        return f"{'<=' if self.better == 'lower' else '>='} {self.target:g}{unit}"

    @property
    def miss(self) -> str:
        """By how much a missed target is missed, in percent of the target."""
        if self.met is not False or self.target is None:
            return ""
        if self.target == 0:
            return f"missed by {self.compared:g} {self.unit}"
        return f"missed by {abs(self.compared - self.target) / self.target:.0%}"

    def as_dict(self) -> dict[str, Any]:
        ratio = self.ratio
        return {
            "row": self.name,
            "unit": self.unit,
            "ours": round(self.ours, 4),
            "reference": None if self.reference is None else round(self.reference, 4),
            "ratio_ours_over_reference": None if ratio is None else round(ratio, 3),
            "better": self.better,
            "target": self.target_text or None,
            "met": self.met,
            "miss": self.miss or None,
            **({"note": self.note} if self.note else {}),
            **({"detail": self.detail} if self.detail else {}),
        }


def table(rows: list[Row]) -> str:
    header = f"{'row':<84} {'unit':<8} {'reference':>10} {'ours':>10} {'ratio':>8}  {'target':<11} met"
    lines = [header, "-" * len(header)]
    for row in rows:
        reference = "" if row.reference is None else f"{row.reference:.4g}"
        ratio = "" if row.ratio is None else f"{row.ratio:.3f}"
        met = "" if row.met is None else ("yes" if row.met else f"NO ({row.miss})")
        lines.append(
            f"{row.name:<84} {row.unit:<8} {reference:>10} {row.ours:>10.4g} {ratio:>8}  {row.target_text:<11} {met}"
        )
    return "\n".join(lines)
