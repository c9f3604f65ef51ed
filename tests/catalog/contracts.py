# Contract stubs have no body by design.
# mypy: disable-error-code="empty-body"
"""Diagnostic tasks for the test suite only: a task as slow as asked, and tasks that hold a worker
on demand. They are not in the shipped catalog: a production worker never offers a task that
holds a worker slot on request.

Served on the `diagnostics` queue. The worker writes markers only in the directory named by
`TASK_DIAGNOSTICS_DIR`; without it the hold tasks refuse to run.
"""

from __future__ import annotations

from task_contracts import contract


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


@contract(name="diagnostics.nap", queue="diagnostics", timeout=3, idempotent=True, cpu_bound=False, on_event_loop=True)
def nap(seconds: float) -> str:
    """Sleep `seconds`, return the name of the worker thread it ran on: declared for the worker's
    event loop (`on_event_loop=True`), so `MainThread` unless the worker sent it to its threads."""
    ...


@contract(name="diagnostics.whereabouts", queue="diagnostics", timeout=3, idempotent=True, cpu_bound=False)
def whereabouts() -> str:
    """Return the name of the worker thread it ran on: light, not declared for the event loop."""
    ...


@contract(name="diagnostics.echo", queue="diagnostics", timeout=5, idempotent=True)
def echo(text: str) -> str:
    """Return `text`: version 1 of a contract served side by side with version 2."""
    ...


@contract(name="diagnostics.echo", queue="diagnostics", timeout=5, idempotent=True, version=2)
def echo_v2(text: str, times: int) -> list[str]:
    """Return `text` `times` times: a breaking change, so a new major version (`diagnostics.echo.v2`)."""
    ...
