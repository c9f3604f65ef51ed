"""The root of every error `task_contracts` raises."""

from __future__ import annotations


class ContractError(Exception):
    """Root of the contracts package's errors: a bad declaration, URL, call or result, and the
    base (`DeclaredError`) of the errors a contract declares its implementation may raise.

    Each subclass also derives from the standard error it refines (`ValueError`, `TypeError`), so
    code that catches those keeps working.
    """
