# Contract stubs have no body by design.
# mypy: disable-error-code="empty-body"
"""Diagnostic tasks for checking a deployment's bounds, served on the `diagnostics` queue."""

from __future__ import annotations

from ._contract import contract


@contract(name="diagnostics.sleep", queue="diagnostics", timeout=3, idempotent=True)
def sleep(seconds: float) -> float:
    """Sleep `seconds` on the worker and return them: a task as slow as asked, to see bounds at work.

    The contract's bound (3 s) is also the worker's hard time limit for one call.
    """
    ...
