# Contract stubs have no body by design.
# mypy: disable-error-code="empty-body"
"""Diagnostic tasks for fault-injection tests and operators: a task as slow as asked, and tasks that
hold a worker on demand.

Served on the `diagnostics` queue. The worker writes markers only in the directory named by
`TASK_DIAGNOSTICS_DIR`; without it the tasks refuse to run, so a production worker exposes
nothing but a bounded wait (`diagnostics.sleep` needs no directory).
"""

from __future__ import annotations

from ._contract import contract


@contract(name="diagnostics.hold", queue="diagnostics", timeout=30, idempotent=True)
def hold(marker: str, seconds: float) -> int:
    """Record a start under `marker`, wait until `marker` is released or `seconds` pass; return the number of starts.

    `marker` is letters, digits, `_` and `-` (at most 64); `seconds` at most 25.
    Idempotent: redelivered after a worker crash and run again.
    """
    ...


@contract(name="diagnostics.hold_once", queue="diagnostics", timeout=30, idempotent=False)
def hold_once(marker: str, seconds: float) -> int:
    """As `diagnostics.hold`, declared not idempotent: never started twice, `OutcomeUnknown` after a crash."""
    ...


@contract(name="diagnostics.sleep", queue="diagnostics", timeout=3, idempotent=True)
def sleep(seconds: float) -> float:
    """Sleep `seconds` on the worker and return them: a task as slow as asked, to see bounds at work.

    The contract's bound (3 s) is also the worker's hard time limit for one call.
    """
    ...
