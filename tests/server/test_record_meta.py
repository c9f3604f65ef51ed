"""The worker's record fields match Celery's own `_get_result_meta` (no Redis: nothing is stored)."""

from __future__ import annotations

from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from celery import states
from celery.backends.base import Backend

from task_contracts import resolve_urls
from task_server._app import create_app
from task_server._internals.backend import plain_record_meta
from task_server._settings import WorkerSettings

REQUESTS = [
    None,
    SimpleNamespace(group=None, parent_id=None, children=[]),
    SimpleNamespace(group="g-1", parent_id="p-1", children=[SimpleNamespace(as_tuple=lambda: (("c-1", None), None))]),
]


@pytest.mark.parametrize("request_", REQUESTS)
@pytest.mark.parametrize("state", [states.SUCCESS, states.FAILURE, states.STARTED, states.RETRY, states.REVOKED])
def test_a_plain_record_has_celerys_own_fields(request_: Any, state: str) -> None:
    backend = create_app(WorkerSettings(urls=resolve_urls("redis://127.0.0.1:1/0"))).backend
    ours = plain_record_meta(backend, {"x": 11}, state, None, request_)
    celerys = Backend._get_result_meta(backend, {"x": 11}, state, None, request_, True, False)
    ours_done, celerys_done = ours.pop("date_done"), celerys.pop("date_done")
    assert ours == celerys
    if celerys_done is None:
        assert ours_done is None
    else:
        assert ours_done.endswith("+00:00") and celerys_done.endswith("+00:00")
        assert abs(datetime.fromisoformat(ours_done) - datetime.fromisoformat(celerys_done)) < timedelta(seconds=5)


def test_the_worker_stores_plain_records_unless_extended_ones_are_asked_for() -> None:
    request = SimpleNamespace(group=None, parent_id=None, children=[], retries=0, task="math.add", args=[4, 7])
    request.kwargs, request.hostname, request.delivery_info = {}, "w", {}
    plain, extended = (create_app(WorkerSettings(urls=resolve_urls("redis://127.0.0.1:1/0"))) for _ in range(2))
    extended.conf.result_extended = True
    assert "args" not in plain.backend.record_meta(11, states.SUCCESS, None, request)
    assert extended.backend.record_meta(11, states.SUCCESS, None, request)["args"] == [4, 7]


def test_a_record_in_another_time_zone_is_dated_there() -> None:
    settings = WorkerSettings(urls=resolve_urls("redis://127.0.0.1:1/0"))
    app = create_app(settings)
    app.conf.timezone = "Asia/Kolkata"
    backend = app.backend  # made after: reads the app's zone once
    done = backend.record_meta(11, states.SUCCESS, None, None)["date_done"]
    assert done.endswith("+05:30")
