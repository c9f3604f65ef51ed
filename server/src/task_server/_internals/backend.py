"""Celery's Redis result backend: the private hooks and attributes the worker's backend uses.

`BackendHooks` goes right before Celery's backend class in a backend's bases; it answers Celery's
private hooks by public-named methods (`store_record`, `record_meta`) that the worker's backend
overrides and chains with `super()`, ending in Celery's own.
"""

from __future__ import annotations

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


def max_value_size(backend: Any) -> int:
    """The longest record, in characters, Celery lets its Redis backend store."""
    size: int = backend._MAX_STR_VALUE_SIZE
    return size
