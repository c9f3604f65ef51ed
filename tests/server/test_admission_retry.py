"""An admission retried for the same delivery (`task_server._admission._admit_now`'s fallback after a
lost connection, or redis-py's own retry) counts one start and gets the same verdict, on a real Redis;
a new delivery of the same call still counts."""

from __future__ import annotations

import json
import time
from types import SimpleNamespace
from typing import Any

import pytest
import redis

from task_contracts.math import add
from task_server import _admission
from task_server._admission import CONTRACT_ATTRIBUTE, _admit_now, admission_command, ask_early
from task_server._pipelined import pipeline_for
from task_server._preadmission import ASKED_KEY
from task_server.testing import RedisProcess
from tests.catalog.contracts import hold_once

pytestmark = pytest.mark.e2e


def test_an_admission_retried_for_the_same_delivery_counts_one_start(private_redis: RedisProcess) -> None:
    client = redis.Redis.from_url(private_redis.url)
    keys, arguments = admission_command(add, "retried", 0, 10.0, "d1")
    first = _admit_now(client, keys, arguments)
    again = _admission._admit_script(client)(keys=keys, args=arguments)  # as the fallback asks
    assert (first, again) == ([b"start", 1], [b"start", 1])
    assert client.get(keys[1]) == b"1"
    keys, arguments = admission_command(add, "retried", 0, 10.0, "d1")  # a new delivery of the same call
    assert _admit_now(client, keys, arguments) == [b"start", 2]
    client.close()


def test_an_admission_whose_connection_is_dropped_after_the_script_ran_counts_one_start(
    private_redis: RedisProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The script ran, and its reply was lost with the shared pipelined connection (dropped by
    another thread's failed read, as when it meets a reset): the fallback through redis-py's Script
    asks again and gets the verdict of that one start."""
    client = redis.Redis.from_url(private_redis.url)
    watcher = redis.Redis.from_url(private_redis.url)
    pipelined = pipeline_for(client.connection_pool)
    keys, arguments = admission_command(add, "cut", 0, 10.0, "d1")
    client.script_load(_admission._ADMIT)  # known by its SHA: the pipelined EVALSHA runs it

    class CutAfterTheWrite:
        def send(self, *command: Any) -> Any:
            reply = pipelined.send(*command)
            deadline = time.monotonic() + 5
            while watcher.get(keys[1]) is None:  # the script has run...
                assert time.monotonic() < deadline, "the admission never ran"
                time.sleep(0.001)
            reply.connection.disconnect()  # ...and its reply is lost with the connection
            return reply

    monkeypatch.setattr(_admission, "pipeline_for", lambda pool: CutAfterTheWrite())
    assert _admit_now(client, keys, arguments) == [b"start", 1]
    assert watcher.get(keys[1]) == b"1"  # one start counted
    pipelined.close()
    client.close()
    watcher.close()


def test_an_early_admission_whose_reply_is_lost_after_the_script_ran_is_asked_again_once(
    private_redis: RedisProcess,
) -> None:
    """An admission written as the call was handed to a thread (`ask_early`), whose reply is lost
    with the pipelined connection after Redis ran it: the thread asks again with the same delivery
    token and gets that start back. Before, it decided 'unrecorded' without asking, and a call not
    idempotent was refused ("its start could not be recorded") although Redis had counted its start."""
    client = redis.Redis.from_url(private_redis.url)
    watcher = redis.Redis.from_url(private_redis.url)
    client.script_load(_admission._ADMIT)  # known by its SHA: the pipelined EVALSHA runs it
    task_id = "early-cut"
    headers: dict[str, Any] = {}
    celery_request = SimpleNamespace(
        task=SimpleNamespace(**{CONTRACT_ATTRIBUTE: hold_once}, backend=SimpleNamespace(client=client)),
        request_dict={"retries": 0},
        id=task_id,
        args=["marker", 1.0],
        kwargs={},
        message=None,
    )
    ask_early(celery_request)
    keys = admission_command(hold_once, task_id, 0, 30.0)[0]
    deadline = time.monotonic() + 5
    while watcher.get(keys[1]) is None:  # the script has run...
        assert time.monotonic() < deadline, "the early admission never ran"
        time.sleep(0.001)
    asked = celery_request.request_dict[ASKED_KEY]
    asked.connection.disconnect()  # ...and its reply is lost with the connection
    task_request = SimpleNamespace(**{**celery_request.request_dict, "id": task_id, "headers": headers})
    task = SimpleNamespace(request=task_request, backend=SimpleNamespace(client=client))
    ran = False
    with _admission.admitted(task, hold_once, 3, 30.0):
        ran = True
    assert ran
    assert watcher.get(keys[1]) == b"1"  # one start counted
    assert json.loads(watcher.get(keys[2]) or b"{}")["attempt"] == 1
    pipeline_for(client.connection_pool).close()
    client.close()
    watcher.close()
