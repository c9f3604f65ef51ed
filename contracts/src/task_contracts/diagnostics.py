# Contract stubs have no body by design.
# mypy: disable-error-code="empty-body"
"""Diagnostic tasks for fault-injection tests and operators: a task that holds a worker on demand.

Served on the `diagnostics` queue. The worker writes markers only in the directory named by
`TASK_DIAGNOSTICS_DIR`; without it the tasks refuse to run, so a production worker exposes
nothing but a bounded wait.
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
