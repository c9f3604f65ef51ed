"""The errors of task_contracts, under one root: a bad declaration, and a call or result that breaks a contract."""

from __future__ import annotations

from collections.abc import Sequence


class ContractError(Exception):
    """Root of the contracts package's errors: a bad declaration, URL, call or result, and the
    base (`DeclaredError`) of the errors a contract declares its implementation may raise.

    Each subclass also derives from the standard error it refines (`ValueError`, `TypeError`), so
    code that catches those keeps working.
    """


class ContractDeclarationError(ContractError, TypeError):
    """Raised at import time when a contract declaration is unusable."""


class ArgumentsError(ContractError, ValueError):
    """Raised when call arguments do not satisfy a contract.

    `problems` lists one human-readable line per offending field.
    """

    def __init__(self, contract_name: str, problems: Sequence[str]) -> None:
        self.contract_name = contract_name
        self.problems = tuple(problems)
        super().__init__(f"invalid arguments for {contract_name}: " + "; ".join(self.problems))


class IncompatibleCall(ArgumentsError):
    """Raised when a call made with another shape of the contract cannot run on this one.

    `problems` names each difference that breaks the call, e.g. `y changed from int to str`.
    """

    def __init__(self, contract_name: str, problems: Sequence[str]) -> None:
        self.contract_name = contract_name
        self.problems = tuple(problems)
        ValueError.__init__(self, f"{contract_name}: " + "; ".join(self.problems))


class ResultError(ContractError, ValueError):
    """Raised when a result value does not satisfy a contract's declared result type."""

    def __init__(self, contract_name: str, problems: Sequence[str]) -> None:
        self.contract_name = contract_name
        self.problems = tuple(problems)
        super().__init__(f"invalid result for {contract_name}: " + "; ".join(self.problems))


class GenerateError(ContractError, ValueError):
    """`task-contracts generate` cannot write a caller: an unreadable export, or a JSON Schema form
    that the target languages' types cannot express (the message names the contract and the form)."""
