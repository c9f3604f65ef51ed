"""Celery's Redis result backend: the private hooks and attributes the worker's backend uses.

`BackendHooks` goes right before Celery's backend class in a backend's bases; it answers Celery's
private hooks by public-named methods (`store_record`, `record_meta`) that the worker's backend
overrides and chains with `super()`, ending in Celery's own.
"""

from __future__ import annotations

import functools
from datetime import datetime, tzinfo
from typing import Any

from celery.backends.redis import RedisBackend

RELIED_ON: tuple[tuple[type, str], ...] = (
    (RedisBackend, "_store_result"),
    (RedisBackend, "_get_result_meta"),
    (RedisBackend, "_MAX_STR_VALUE_SIZE"),
    *((RedisBackend, name) for name in ("mark_as_done", "get_key_for_task", "encode", "client", "expires")),
)


class BackendHooks:
    """Celery's private hooks of its result backend, under public names (see the module doc)."""

    #: Celery's redis-py client of the backend, made by Celery's own function and kept in the
    #: instance's `__dict__` as Celery's `cached_property` keeps it, then read as a plain attribute:
    #: Celery's (kombu's) takes a lock on every read, three times per call served in the main process.
    client = functools.cached_property(RedisBackend.client.func)

    def _store_result(
        self, task_id: str, result: Any, state: str, traceback: Any = None, request: Any = None, **kwargs: Any
    ) -> Any:
        return self.store_record(task_id, result, state, traceback, request, **kwargs)

    def _get_result_meta(
        self, result: Any, state: str, traceback: Any, request: Any, format_date: bool = True, encode: bool = False
    ) -> dict[str, Any]:
        return self.record_meta(result, state, traceback, request, format_date, encode)

    def store_record(
        self, task_id: str, result: Any, state: str, traceback: Any = None, request: Any = None, **kwargs: Any
    ) -> Any:
        """Store a task's record (Celery's `_store_result`)."""
        return super()._store_result(task_id, result, state, traceback, request, **kwargs)  # type: ignore[misc]

    def record_meta(
        self, result: Any, state: str, traceback: Any, request: Any, format_date: bool = True, encode: bool = False
    ) -> dict[str, Any]:
        """The record's fields for a result in `state` (Celery's `_get_result_meta`)."""
        meta: dict[str, Any] = super()._get_result_meta(  # type: ignore[misc]
            result, state, traceback, request, format_date, encode
        )
        return meta


def plain_record_meta(
    backend: Any, result: Any, state: str, traceback: Any, request: Any, timezone: tzinfo | None = None
) -> dict[str, Any]:
    """Celery's `_get_result_meta` (5.6, 5.7) for a backend without `result_extended`, formatted date:
    the same fields, without its look-up of that setting and its time-zone round trip per record
    (148k -> 26k instructions a record, callgrind). tests/server/test_record_meta.py compares the two.
    `timezone`: the app's, when the caller has it (Celery's app reads it through a locked property)."""
    zone = backend.app.timezone if timezone is None else timezone
    date_done = datetime.now(zone).isoformat() if state in backend.READY_STATES else None
    meta = {
        "status": state,
        "result": result,
        "traceback": traceback,
        "children": backend.current_task_children(request),
        "date_done": date_done,
    }
    if request and getattr(request, "group", None):
        meta["group_id"] = request.group
    if request and getattr(request, "parent_id", None):
        meta["parent_id"] = request.parent_id
    return meta


def max_value_size(backend: Any) -> int:
    """The longest record, in characters, Celery lets its Redis backend store."""
    size: int = backend._MAX_STR_VALUE_SIZE
    return size
