"""Every error the client raises derives from `TaskError`.

Besides these, a call with arguments that do not fit Python's own rules (an unknown keyword, say)
still raises `InvalidArguments`, and a wrong per-call option `InvalidOptions`; only other misuse
of the SDK itself (a workflow of the wrong shape, say) raises a standard `TypeError` or `ValueError`.
"""

from __future__ import annotations

from collections.abc import Sequence

from task_contracts import DeclaredError


class TaskError(Exception):
    """Root of the client's errors. `contract` is the wire name; `task_id` is set once published."""

    def __init__(self, message: str, *, contract: str | None = None, task_id: str | None = None) -> None:
        super().__init__(message)
        self.contract = contract
        self.task_id = task_id


class InvalidArguments(TaskError, ValueError):
    """The arguments do not satisfy the contract. Raised before anything is published.

    `problems` lists one line per offending parameter.
    """

    def __init__(self, message: str, *, contract: str, problems: Sequence[str]) -> None:
        super().__init__(message, contract=contract)
        self.problems = tuple(problems)


class InvalidOptions(TaskError, TypeError, ValueError):
    """A per-call option is wrong (`countdown`, `eta`, `expires`, `priority`): of the wrong type, out
    of range, or a due time no calendar holds. Raised before anything is published; the message
    names the option. Also a `TypeError` and a `ValueError`, as these options raised before."""


class TaskFailed(TaskError):
    """The task ran, or was refused by the worker, and failed.

    `remote_type` and `remote_message` are the worker-side exception's class name and message.
    """

    def __init__(
        self,
        message: str,
        *,
        contract: str | None,
        task_id: str,
        remote_type: str,
        remote_message: str,
        remote_traceback: str | None = None,
    ) -> None:
        super().__init__(message, contract=contract, task_id=task_id)
        self.remote_type = remote_type
        self.remote_message = remote_message
        self.remote_traceback = remote_traceback


class TaskCancelled(TaskError):
    """The call was cancelled (`handle.cancel()`, `task-client cancel`, or a Celery revoke): it never
    ran, or it was stopped while running (an interruptible contract)."""


class TaskExpired(TaskError):
    """The call's `expires` time passed before it started, so it never ran."""


class ContractMismatch(TaskError):
    """Client and worker hold different versions of a contract and the difference breaks this call.

    The message names it, e.g. `math.add: y changed from int to str`, `parameter 'z' is not known to
    this worker`, or a result field the client needs that the worker's result lacks.
    """


class TaskTimeout(TaskError, TimeoutError):
    """No result within the bound. The task may still run: wait again with `client.<task>.handle(task_id)`."""

    def __init__(self, message: str, *, contract: str | None, task_id: str, timeout: float) -> None:
        super().__init__(message, contract=contract, task_id=task_id)
        self.timeout = timeout


class RecordRefused(TaskTimeout):
    """No acceptable record within the bound, but one or more were refused: not signed by a worker
    key the client trusts (`verify_key_file`), a REVOKED record without the call's cancel token, or a
    record of another call that reused this id (its argument digest differs). `reason` says which;
    the refused value was never returned. The genuine record may still come: wait again."""

    def __init__(self, message: str, *, contract: str | None, task_id: str, timeout: float, reason: str) -> None:
        super().__init__(message, contract=contract, task_id=task_id, timeout=timeout)
        self.reason = reason


class VerifyKeyError(TaskError, ValueError):
    """The verify key file cannot be read, holds no Ed25519 public key, or `cryptography` is missing
    (`task-client[signing]`). Raised by the client's constructor."""


class BrokerUnavailable(TaskError, ConnectionError):
    """The broker or result backend could not be reached in time, or refused a command (an ACL or
    memory limit, for example). `url` never contains a password."""

    def __init__(self, message: str, *, url: str, contract: str | None = None, task_id: str | None = None) -> None:
        super().__init__(message, contract=contract, task_id=task_id)
        self.url = url


class ClientClosed(TaskError, RuntimeError):
    """The client was closed before the call, or while it was still waiting for its result."""


class UnknownTask(TaskError, LookupError):
    """No contract has this name on the client, or the worker does not serve it."""


class OutcomeUnknown(TaskError):
    """The task may or may not have taken effect; the client cannot tell which.

    Raised when a task not declared idempotent was interrupted by a worker crash (it is never
    run twice), or when a task finished but the worker could not store its result. Check the
    effect yourself before calling again. `remote_message` says which case it was.
    """

    def __init__(self, message: str, *, contract: str | None, task_id: str, remote_message: str) -> None:
        super().__init__(message, contract=contract, task_id=task_id)
        self.remote_message = remote_message


class BatchFailed(TaskError):
    """Some calls of a batch (`map`) failed or ran out of time; the others succeeded.

    Raised once every call has finished or the batch's bound has run out. `outcomes` holds, in
    input order, each call's value or its `TaskError`; `errors` maps input index to error.
    """

    def __init__(self, message: str, *, contract: str, outcomes: Sequence[object]) -> None:
        super().__init__(message, contract=contract)
        self.outcomes = list(outcomes)
        self.errors = {index: item for index, item in enumerate(self.outcomes) if isinstance(item, TaskError)}


_DECLARED_FAILURES: dict[type[DeclaredError], type[TaskFailed]] = {}


def declared_failure(declared: type[DeclaredError]) -> type[TaskFailed]:
    """The class the client raises for a contract's declared error: both `TaskFailed` and `declared`.

    So `except InsufficientFunds` and `except TaskFailed` both catch it. One class per declared type.
    """
    found = _DECLARED_FAILURES.get(declared)
    if found is None:
        namespace = {"__module__": declared.__module__, "__doc__": declared.__doc__}
        found = _DECLARED_FAILURES.setdefault(declared, type(declared.__name__, (TaskFailed, declared), namespace))
    return found
