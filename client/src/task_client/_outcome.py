"""A result record becomes a value or a typed error: one code path for sync and async callers."""

from __future__ import annotations

from typing import Any

from task_contracts import Contract, ResultError
from task_contracts.wire import (
    ATTEMPT_FIELD,
    REMOTE_BROKER_UNAVAILABLE,
    REMOTE_CONTRACT_MISMATCH,
    REMOTE_NOT_REGISTERED,
    REMOTE_OUTCOME_UNKNOWN,
    REMOTE_WORKER_LOST,
    REVOKED_EXPIRED,
)

from ._errors import (
    BrokerUnavailable,
    ContractMismatch,
    OutcomeUnknown,
    RecordRefused,
    TaskCancelled,
    TaskError,
    TaskExpired,
    TaskFailed,
    TaskTimeout,
    UnknownTask,
    declared_failure,
)


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
    failure = remote_error(name, task_id, record)
    declared = contract.declared_error(failure.remote_type) if contract and isinstance(failure, TaskFailed) else None
    if declared is not None and isinstance(failure, TaskFailed):
        raise declared_failure(declared)(
            str(failure),
            contract=name,
            task_id=task_id,
            remote_type=failure.remote_type,
            remote_message=failure.remote_message,
            remote_traceback=failure.remote_traceback,
        )
    raise failure


def remote_error(contract: str | None, task_id: str, record: dict[str, Any]) -> TaskError:
    """The client error for a FAILURE or REVOKED record."""
    failure = record.get("result")
    failure = failure if isinstance(failure, dict) else {}
    remote_type = str(failure.get("exc_type") or record.get("status") or "UnknownError")
    remote_message = _message(failure.get("exc_message"))
    where = contract or "task"
    if record.get("status") == "REVOKED":
        if remote_message.strip() == REVOKED_EXPIRED:
            return TaskExpired(
                f"{where} {task_id} expired before it started; it never ran", contract=contract, task_id=task_id
            )
        return TaskCancelled(
            f"{where} {task_id} was cancelled ({remote_message or 'revoked'})", contract=contract, task_id=task_id
        )
    if remote_type == REMOTE_BROKER_UNAVAILABLE:
        url = str(failure.get("url") or "")
        return BrokerUnavailable(
            f"result backend {url} is unavailable: {remote_message}", url=url, contract=contract, task_id=task_id
        )
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
    attempts = record.get(ATTEMPT_FIELD)
    after = f" (attempt {attempts})" if isinstance(attempts, int) and attempts > 1 else ""
    return TaskFailed(
        f"{where} failed on the worker{after}: {remote_type}: {remote_message}",
        contract=contract,
        task_id=task_id,
        remote_type=remote_type,
        remote_message=remote_message,
        remote_traceback=record.get("traceback"),
    )


def timeout_error(contract: str | None, task_id: str, timeout: float, refused: str | None = None) -> TaskTimeout:
    """`TaskTimeout`, or `RecordRefused` when a record came but was refused (`refused` says why)."""
    if refused is not None:
        return RecordRefused(
            f"{contract or 'task'} {task_id}: no acceptable result within {timeout:g} s; "
            f"a record was refused: {refused}",
            contract=contract,
            task_id=task_id,
            timeout=timeout,
            reason=refused,
        )
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
