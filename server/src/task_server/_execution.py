"""The body every contract task runs: check the caller's contract, validate, call, validate the result."""

from __future__ import annotations

from typing import Any

from celery import Celery, Task

from task_contracts import ArgumentsError, Contract, ResultError
from task_contracts._wire import FINGERPRINT_HEADER

from ._errors import ContractMismatch, InvalidArguments, InvalidResult
from ._registry import Implementation


def register(app: Celery, implementation: Implementation[..., Any]) -> Task:
    """Register `implementation` as a Celery task under its contract's wire name."""
    contract = implementation.contract
    function = implementation.function

    def run(task: Task, *args: Any, **kwargs: Any) -> Any:
        _check_fingerprint(contract, task.request)
        try:
            values = contract.validate_arguments(args, kwargs)
        except ArgumentsError as error:
            raise InvalidArguments(str(error)) from None
        value = function(**values)
        try:
            return contract.encode_result(value)
        except ResultError as error:
            raise InvalidResult(str(error)) from None

    run.__name__ = run.__qualname__ = contract.name.replace(".", "_")
    run.__module__ = function.__module__
    task: Task = app.task(
        run,
        name=contract.name,
        bind=True,
        typing=False,  # arguments are checked against the contract, not this wrapper
        # Redelivery after a crash is only safe for idempotent work.
        acks_late=contract.idempotent,
        reject_on_worker_lost=contract.idempotent,
        time_limit=contract.timeout,
        throws=(InvalidArguments, ContractMismatch),  # expected refusals: logged without traceback
    )
    return task


def _check_fingerprint(contract: Contract[..., Any], request: Any) -> None:
    headers = request.headers or {}
    sent = headers.get(FINGERPRINT_HEADER) or getattr(request, FINGERPRINT_HEADER, None)
    # Producers in other languages send no fingerprint; their arguments are still validated.
    if sent is not None and sent != contract.fingerprint:
        raise ContractMismatch(
            f"{contract.name}: the caller's contract (fingerprint {sent}) differs from this "
            f"worker's (fingerprint {contract.fingerprint}); update task-contracts on one side"
        )
