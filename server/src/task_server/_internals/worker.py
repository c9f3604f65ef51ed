"""Celery's worker: the private hooks and attributes of its consumer, pools and current task."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from celery import current_task
from celery.concurrency.base import BasePool
from celery.local import Proxy
from celery.worker.worker import WorkController

RELIED_ON: tuple[tuple[type, str], ...] = (
    (WorkController, "_process_task"),
    (BasePool, "_get_info"),
    (Proxy, "_get_current_object"),
)


class PoolHooks:
    """Goes right before Celery's pool class: its private `_get_info` hook as `pool_info`, which a
    pool overrides and chains with `super()`, ending in Celery's own."""

    def _get_info(self) -> dict[str, Any]:
        return self.pool_info()

    def pool_info(self) -> dict[str, Any]:
        """The pool's part of `celery inspect stats` (Celery's `_get_info`)."""
        info: dict[str, Any] = super()._get_info()  # type: ignore[misc]
        return info


def task_processor(consumer: Any) -> Callable[[Any], None]:
    """What the worker's consumer calls to run a request in its pool (the controller's `_process_task`)."""
    process: Callable[[Any], None] = consumer.controller._process_task
    return process


def running_task() -> Any:
    """The Celery task running in this thread or process, or None."""
    return current_task._get_current_object()
