"""Long-running example tasks that report progress, served on the `reports` queue."""

from __future__ import annotations

from ._contract import contract


@contract(name="reports.count_to", queue="reports", timeout=60, idempotent=True)
def count_to(n: int, delay: float = 0.05) -> int:
    """Count from 1 to n, pausing `delay` seconds per step and reporting progress; return n."""
    raise NotImplementedError
