"""Chunk tasks: one message carrying many calls of one contract, run and answered item by item.

A worker runs only a few hundred Celery messages per second, whatever they carry, so a client
that sends many small calls of the same contract packs them into chunks (`RemoteTask.map`).
Each call is validated, run and checked as if it had come alone; a failing call fails alone and
its record says why, while the other calls of the chunk still return their results.
"""

from __future__ import annotations

import traceback
from typing import Any

from celery import Celery, Task
from celery.utils.log import get_task_logger

from task_contracts.wire import MAX_CHUNK_SIZE, chunk_task_name

from ._admission import admitted
from ._deliveries import DEFAULT_MAX_DELIVERIES
from ._errors import ContractMismatch, InvalidArguments
from ._execution import caller_shape, checked_result, task_options, validated_arguments
from ._internals.worker import keep_requests_per_thread
from ._registry import Implementation

logger = get_task_logger(__name__)

Record = dict[str, Any]


def register_chunks(
    app: Celery, implementation: Implementation[..., Any], max_deliveries: int = DEFAULT_MAX_DELIVERIES
) -> Task:
    """Register the chunk task of `implementation`'s contract under its reserved wire name.

    A chunk is one delivery: the same intake checks and redelivery policy as a single call.
    """
    contract = implementation.contract
    function = implementation.function
    name = chunk_task_name(contract.name)

    def run_one(item: Any, shape: Any) -> Record:
        try:
            if not (isinstance(item, list) and len(item) == 2 and isinstance(item[0], list)):
                raise InvalidArguments(f"{contract.name}: a chunk item must be [args, kwargs], got {item!r:.80}")
            args, kwargs = item
            if not isinstance(kwargs, dict):
                raise InvalidArguments(f"{contract.name}: a chunk item's kwargs must be an object, got {kwargs!r:.80}")
            values = validated_arguments(contract, args, kwargs, shape)
            return {"status": "SUCCESS", "result": checked_result(contract, function(**values))}
        except Exception as error:
            # Expected refusals carry their reason in the message; anything else keeps its traceback.
            expected = isinstance(error, (InvalidArguments, ContractMismatch))
            return {
                "status": "FAILURE",
                "result": {
                    "exc_type": type(error).__name__,
                    "exc_message": [str(error)],
                    "exc_module": type(error).__module__,
                },
                "traceback": None if expected else traceback.format_exc(),
            }

    def run(task: Task, items: Any) -> list[Record]:
        shape = caller_shape(task.request)
        if not isinstance(items, list):
            raise InvalidArguments(f"{name}: the argument must be a list of [args, kwargs] pairs")
        if len(items) > MAX_CHUNK_SIZE:
            raise InvalidArguments(f"{name}: {len(items)} calls in one chunk; at most {MAX_CHUNK_SIZE} are accepted")
        # A chunk runs its calls one after another, so it holds one slot of a concurrency limit.
        with admitted(task, contract, max_deliveries, lease=contract.timeout * len(items)):
            records = [run_one(item, shape) for item in items]
        failed = [index for index, record in enumerate(records) if record["status"] != "SUCCESS"]
        if failed:
            logger.warning(
                "%s[%s]: %d of %d calls failed (items %s)", name, task.request.id, len(failed), len(items), failed[:10]
            )
        return records

    run.__name__ = run.__qualname__ = contract.name.replace(".", "_") + "_chunk"
    run.__module__ = function.__module__
    # Each call keeps its own bound; the client sends the exact limit of each chunk in the message.
    task: Task = app.task(run, name=name, time_limit=contract.timeout * MAX_CHUNK_SIZE, **task_options(contract))
    keep_requests_per_thread(task)
    return task
