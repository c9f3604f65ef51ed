"""Errors a worker stores as a task's result; clients recognise them by class name."""

from __future__ import annotations

from task_contracts.wire import (
    REMOTE_CONTRACT_MISMATCH,
    REMOTE_DELIVERY_LIMIT,
    REMOTE_DUPLICATE_ID,
    REMOTE_INVALID_ARGUMENTS,
    REMOTE_INVALID_RESULT,
    REMOTE_OUTCOME_UNKNOWN,
    REMOTE_REFUSED_MESSAGE,
)


class ServerError(Exception):
    """Root of the server package's errors: what a worker stores for a refused call, and what
    `verify`, `task-server beat` or the test helpers raise. Subclasses also derive from the standard
    error they refine (`ValueError`, `TypeError`, `RuntimeError`)."""


class InvalidArguments(ServerError, ValueError):
    """The message's arguments do not satisfy the contract; the implementation never ran."""


class ContractMismatch(ServerError, ValueError):
    """The caller's contract differs from the worker's in a way that breaks this call (a parameter the
    worker does not know, a required one the caller lacks, a changed type); the implementation never ran."""


class InvalidResult(ServerError, TypeError):
    """The implementation returned a value that does not satisfy the contract's result type."""


class OutcomeUnknown(ServerError, RuntimeError):
    """The task may or may not have taken effect: a non-idempotent task was interrupted by a
    worker crash (so it is not run again), or it finished but its result could not be stored."""


class DeliveryLimitExceeded(ServerError, RuntimeError):
    """An idempotent task was started as many times as the worker allows, each start lost to a crash."""


class RefusedMessage(ServerError, ValueError):
    """The message itself is unacceptable (too large, not JSON); it was never decoded or run."""


class DuplicateTaskId(ServerError, ValueError):
    """Another call with other arguments already used this message's task id; the message was not
    run, and the other call's record was left alone (published on the message's reply channel only)."""


# The class names are the wire protocol; fail at import if they drift apart.
assert DuplicateTaskId.__name__ == REMOTE_DUPLICATE_ID
assert InvalidArguments.__name__ == REMOTE_INVALID_ARGUMENTS
assert ContractMismatch.__name__ == REMOTE_CONTRACT_MISMATCH
assert InvalidResult.__name__ == REMOTE_INVALID_RESULT
assert OutcomeUnknown.__name__ == REMOTE_OUTCOME_UNKNOWN
assert DeliveryLimitExceeded.__name__ == REMOTE_DELIVERY_LIMIT
assert RefusedMessage.__name__ == REMOTE_REFUSED_MESSAGE


class ImplementationError(ServerError):
    """Raised by `verify` when the implementations do not match the contracts exactly.

    `problems` lists one line per contract that is missing, doubled or differs.
    """

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


class ScheduleError(ServerError):
    """Raised when a periodic schedule cannot run against the contracts (`task-server beat` refuses to start).

    `problems` lists one line per problem, each naming its schedule.
    """

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


class TracingUnavailable(ServerError, RuntimeError):
    """`--tracing` was asked for without the OpenTelemetry packages (`task-server[otel]`), or
    `OTEL_TRACES_EXPORTER` names an exporter that is not installed."""


class SigningKeyError(ServerError, ValueError):
    """The record-signing key file cannot be read, is not an Ed25519 private key, or the
    `cryptography` package is missing (`task-server[signing]`). Raised before the worker starts."""


class EmbeddedRedisError(ServerError, RuntimeError):
    """`task-server dev` cannot start its embedded Redis: no `redis-server`, or another server
    answers on its port."""


class PortTaken(EmbeddedRedisError):
    """The port asked of `task-server dev` is in use (by another Redis, most likely): never joined, refused."""
