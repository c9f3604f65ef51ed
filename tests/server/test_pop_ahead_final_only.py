"""The next pop is written ahead (`_batch_pop.pop_ahead`) only by the store of a call's final record
on the event loop: a progress report there is a store of a call that goes on running, and a pop
written then would take the next message off its queue for the rest of that call (no other worker
could serve it meanwhile, and a worker killed then would lose it), not the ~0.1-0.2 ms that
docs/failure-modes.md (row 4d) names. A real Redis as result backend."""

from __future__ import annotations

import uuid

import pytest
from celery import states

from task_contracts import resolve_urls
from task_contracts.wire import PROGRESS_STATE
from task_server import _backend, _inline
from task_server._app import create_app
from task_server._settings import WorkerSettings
from task_server.testing import RedisProcess

pytestmark = pytest.mark.e2e


def test_only_a_final_record_stored_on_the_loop_writes_the_next_pop_ahead(
    private_redis: RedisProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = create_app(WorkerSettings(urls=resolve_urls(private_redis.url))).backend
    asked: list[str] = []
    monkeypatch.setattr(_backend, "pop_ahead", lambda: asked.append("pop ahead"))
    monkeypatch.setattr(_inline._turn, "running", True)  # as while a call runs on the event loop
    task_id = str(uuid.uuid4())
    backend.store_result(task_id, {"done": 1, "total": 2, "message": ""}, PROGRESS_STATE)
    assert asked == []
    backend.store_result(task_id, 3, states.SUCCESS)
    assert asked == ["pop ahead"]
