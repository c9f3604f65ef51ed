"""A result record becomes a value or a typed error: one code path for sync and async callers."""

from __future__ import annotations

from typing import Any

from task_contracts import Contract, ResultError
from task_contracts.wire import (
    REMOTE_CONTRACT_MISMATCH,
    REMOTE_NOT_REGISTERED,
    REMOTE_OUTCOME_UNKNOWN,
    REMOTE_WORKER_LOST,
)

from ._errors import ContractMismatch, OutcomeUnknown, TaskError, TaskFailed, TaskTimeout, UnknownTask


def decode_outcome(contract: Contract[..., Any] | None, task_id: str, record: dict[str, Any]) -> Any:
    """The validated result of a ready record, or the error it stands for."""
    name = contract.name if contract else None
    status = record.get("status")
    if status == "SUCCESS":
        if contract is None:
            return record.get("result")
        try:
            return contract.decode_result(record.get("result"))
        except ResultError as error:
            raise ContractMismatch(
                f"{name}: the worker's result does not fit this client's contract (a result field removed "
                f"or its type changed on the worker): " + "; ".join(error.problems),
                contract=name,
                task_id=task_id,
            ) from None
    raise remote_error(name, task_id, record)


def remote_error(contract: str | None, task_id: str, record: dict[str, Any]) -> TaskError:
    """The client error for a FAILURE or REVOKED record."""
    failure = record.get("result")
    failure = failure if isinstance(failure, dict) else {}
    remote_type = str(failure.get("exc_type") or record.get("status") or "UnknownError")
    remote_message = _message(failure.get("exc_message"))
    where = contract or "task"
    if remote_type == REMOTE_NOT_REGISTERED:
        return UnknownTask(f"no worker serves {where}: {remote_message}", contract=contract, task_id=task_id)
    if remote_type == REMOTE_CONTRACT_MISMATCH:
        return ContractMismatch(remote_message, contract=contract, task_id=task_id)
    if remote_type in (REMOTE_OUTCOME_UNKNOWN, REMOTE_WORKER_LOST):
        return OutcomeUnknown(
            f"{where}: outcome unknown: {remote_message}",
            contract=contract,
            task_id=task_id,
            remote_message=remote_message,
        )
    return TaskFailed(
        f"{where} failed on the worker: {remote_type}: {remote_message}",
        contract=contract,
        task_id=task_id,
        remote_type=remote_type,
        remote_message=remote_message,
        remote_traceback=record.get("traceback"),
    )


def timeout_error(contract: str | None, task_id: str, timeout: float) -> TaskTimeout:
    return TaskTimeout(
        f"{contract or 'task'} {task_id}: no result within {timeout:g} s "
        "(the task may still run; wait again with .handle(task_id).result())",
        contract=contract,
        task_id=task_id,
        timeout=timeout,
    )


def _message(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return " ".join(str(part) for part in value)
    return "" if value is None else str(value)
