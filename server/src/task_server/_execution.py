"""The body every contract task runs: check the caller's contract, validate, call, validate the result."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from celery import Celery, Task

from task_contracts import ArgumentsError, Contract, IncompatibleCall, ResultError
from task_contracts.wire import SHAPE_HEADER

from ._admission import CONTRACT_ATTRIBUTE, admitted, forget_start, release_early_admission
from ._backend import CALL_DIGEST_ATTRIBUTE
from ._deliveries import DEFAULT_MAX_DELIVERIES
from ._errors import ContractMismatch, DeliveryLimitExceeded, InvalidArguments, InvalidResult, OutcomeUnknown
from ._inline import note_run
from ._intake import STRATEGY
from ._internals.worker import keep_requests_per_thread
from ._preadmission import digest_of_call
from ._registry import Implementation
from ._threads import IN_PROCESS_REQUEST, served_by_this_process


def register(
    app: Celery, implementation: Implementation[..., Any], max_deliveries: int = DEFAULT_MAX_DELIVERIES
) -> Task:
    """Register `implementation` as a Celery task under its contract's wire name.

    Redelivery follows the contract's idempotency and `max_deliveries` (see `_deliveries`);
    cancels and the fleet-wide concurrency limit are checked first (see `_admission`); a failure
    the contract's `Retry` names runs the call again through Celery's `Task.retry`.
    """
    contract = implementation.contract
    function = implementation.function
    name, on_loop = contract.name, contract.on_event_loop  # its runs on the loop are watched (`_inline`)

    def run(task: Task, *args: Any, **kwargs: Any) -> Any:
        request = task.request
        # Before anything is stored for the call: every record of it carries this digest, of the
        # arguments it runs with (the one its early admission computed from these same objects).
        setattr(request, CALL_DIGEST_ATTRIBUTE, digest_of_call(request, args, kwargs))
        try:
            values = validated_arguments(contract, args, kwargs, caller_shape(request))
        except BaseException:
            release_early_admission(task, contract)  # never admitted: nothing of it may stay taken
            raise
        with admitted(task, contract, max_deliveries, lease=contract.timeout):
            started = time.perf_counter()
            try:
                value = function(**values)
            except Exception as error:
                retry_if_declared(task, contract, error)
                raise
            finally:
                if on_loop:
                    note_run(name, time.perf_counter() - started)
        return checked_result(contract, value)

    run.__name__ = run.__qualname__ = contract.name.replace(".", "_")
    run.__module__ = function.__module__
    task: Task = app.task(
        run,
        name=contract.name,
        time_limit=contract.timeout,
        cpu_bound=contract.cpu_bound,
        on_event_loop=contract.on_event_loop,
        **task_options(contract),
        **({"Request": IN_PROCESS_REQUEST} if served_by_this_process(app, contract.cpu_bound) else {}),
    )
    setattr(task, CONTRACT_ATTRIBUTE, contract)  # for an admission asked as a thread is given the call
    keep_requests_per_thread(task)
    return task


def task_options(contract: Contract[..., Any]) -> dict[str, Any]:
    """Celery options of the tasks serving `contract`: the common ones and its declared policies."""
    return {
        **TASK_OPTIONS,
        "throws": (*TASK_OPTIONS["throws"], *contract.raises),  # declared: expected, no traceback logged
        # Celery's token bucket, kept by each worker process group on its own (not fleet-wide).
        "rate_limit": contract.rate_limit,
        "max_retries": contract.retry.attempts - 1 if contract.retry else 0,
    }


def retry_if_declared(task: Task, contract: Contract[..., Any], error: Exception) -> None:
    """Raise Celery's `Retry` when the contract's policy names `error` and attempts remain."""
    policy = contract.retry
    attempt = int(task.request.retries or 0) + 1
    if policy is None or not policy.applies_to(error) or attempt >= policy.attempts:
        return  # the failure is the call's outcome
    forget_start(task)
    raise task.retry(exc=error, countdown=policy.delay(attempt), max_retries=policy.attempts - 1)


#: Options of every task serving a contract, single calls and chunks alike.
TASK_OPTIONS: dict[str, Any] = {
    "bind": True,
    # Registered on this app only: a shared task would also be added to every other app of the
    # process (a second `create_app`, in tests or an embedding program), where its closure is foreign.
    "shared": False,
    "typing": False,  # arguments are checked against the contract, not the wrapper's signature
    # Acknowledged once finished and requeued if its process dies, so a crash never loses it;
    # `admit` decides from the contract's idempotency whether a second start may run.
    "acks_late": True,
    "reject_on_worker_lost": True,
    # Expected refusals: logged without traceback.
    "throws": (InvalidArguments, ContractMismatch, OutcomeUnknown, DeliveryLimitExceeded),
    "Strategy": STRATEGY,  # size, content type and shape checked before anything is decoded
}


def validated_arguments(
    contract: Contract[..., Any], args: Sequence[Any], kwargs: Mapping[str, Any], shape: Any
) -> dict[str, Any]:
    """The call's typed values, made with the caller's `shape` of the contract (None from foreign
    producers); `ContractMismatch` naming each difference that breaks it, or `InvalidArguments`
    naming each invalid value (both stored by name)."""
    try:
        return contract.accept_call(args, kwargs, shape)
    except IncompatibleCall as error:
        raise ContractMismatch(str(error)) from None
    except ArgumentsError as error:
        raise InvalidArguments(str(error)) from None


def caller_shape(request: Any) -> Any:
    """The `contract_shape` header of a message, or None (producers in other languages send none)."""
    headers = request.headers or {}
    return headers.get(SHAPE_HEADER) or getattr(request, SHAPE_HEADER, None)


def checked_result(contract: Contract[..., Any], value: Any) -> Any:
    """The implementation's value, JSON-ready, or `InvalidResult` if it breaks the result type."""
    try:
        return contract.encode_result(value)
    except ResultError as error:
        raise InvalidResult(str(error)) from None
