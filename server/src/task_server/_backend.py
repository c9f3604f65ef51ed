"""The result backend: Celery's Redis backend, except that a result it cannot store is reported
as outcome unknown rather than as a failure of the task."""

from __future__ import annotations

import logging
import socket
from typing import Any

import kombu.exceptions
import redis.exceptions
from celery import states
from celery.backends.redis import RedisBackend, SentinelBackend
from celery.exceptions import BackendStoreError

from task_contracts.wire import ATTEMPT_FIELD

from ._errors import OutcomeUnknown

# What storing raises once the retries below have given up on Redis.
STORE_ERRORS = (
    BackendStoreError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    kombu.exceptions.OperationalError,
    socket.timeout,
    OSError,
)

logger = logging.getLogger(__name__)


def store_retry_config() -> dict[str, Any]:
    """Retry a failed store for about 10 s (jittered exponential backoff) before giving up.

    Without it Celery 5.7 gives up at once (it reads the stored record before writing it), so a
    Redis restart of a second loses every result being stored at that moment.
    """
    return {
        "result_backend_always_retry": True,
        "result_backend_max_retries": 15,
        "result_backend_base_sleep_between_retries_ms": 100,
        "result_backend_max_sleep_between_retries_ms": 2000,
    }


class _ReportsLostResults:
    """Celery would record the Redis `ConnectionError` as the task's own exception; the task did
    run, so the client must learn that its outcome is unknown, not that it failed.
    """

    def __init__(self, app: Any, url: str | None = None, **kwargs: Any) -> None:
        super().__init__(app=app, url=url or app.conf.result_backend, **kwargs)  # type: ignore[call-arg]

    def mark_as_done(
        self,
        task_id: str,
        result: Any,
        request: Any = None,
        store_result: bool = True,
        state: str = states.SUCCESS,
    ) -> Any:
        try:
            return super().mark_as_done(task_id, result, request, store_result, state)  # type: ignore[misc]
        except STORE_ERRORS as error:
            logger.error("task %s finished but its result could not be stored (%s): outcome unknown", task_id, error)
            raise OutcomeUnknown(
                f"task {task_id} finished on the worker but its result could not be stored "
                f"({type(error).__name__}: {error}); it may or may not have taken effect"
            ) from None

    def _get_result_meta(
        self, result: Any, state: str, traceback: Any, request: Any, format_date: bool = True, encode: bool = False
    ) -> dict[str, Any]:
        meta: dict[str, Any] = super()._get_result_meta(  # type: ignore[misc]
            result, state, traceback, request, format_date, encode
        )
        # Which attempt stored this record, once a call has been retried (`handle.attempt` on the client).
        retries = int(getattr(request, "retries", 0) or 0) if request is not None else 0
        if retries or state == states.RETRY:
            meta[ATTEMPT_FIELD] = retries + 1
        return meta


class ResultBackend(_ReportsLostResults, RedisBackend):  # type: ignore[misc]
    """Used as `app.backend_cls` for `redis://` and `rediss://`; the URL still comes from `result_backend`."""


class SentinelResultBackend(_ReportsLostResults, SentinelBackend):  # type: ignore[misc]
    """The same for `sentinel://`: the master is found through the sentinels, again after a failover."""


def backend_class(url: str) -> type[RedisBackend]:
    return SentinelResultBackend if url.startswith("sentinel:") else ResultBackend
