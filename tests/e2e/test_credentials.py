"""Redis ACL users and passwords in URLs work for broker and backend, and never show anywhere.

A real redis-server with a password for the default user and an ACL user; a real worker and
client log in with the user; then Redis goes away so every error path (client errors, the
worker's reconnection log) runs with the password in its URL.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from task_client import BrokerUnavailable, TaskClient
from task_server.testing import RedisProcess, WorkerProcess, wait_until

pytestmark = pytest.mark.e2e

DEFAULT_PASSWORD = "default-pw-never-shown"
USER_PASSWORD = "alice-pw-never-shown"
WRONG_PASSWORD = "wrong-pw-never-shown"


def acl_redis(workdir: Path) -> RedisProcess:
    return RedisProcess(
        workdir=str(workdir),
        extra_args=[
            "--requirepass",
            DEFAULT_PASSWORD,
            "--user",
            "alice",
            "on",
            f">{USER_PASSWORD}",
            "~*",
            "&*",
            "+@all",
        ],
    )


def test_an_acl_user_in_the_url_works_and_its_password_never_shows(tmp_path: Path) -> None:
    with acl_redis(tmp_path) as redis:
        redis.start()
        user_url = f"redis://alice:{USER_PASSWORD}@127.0.0.1:{redis.port}/0"
        default_url = f"redis://:{DEFAULT_PASSWORD}@127.0.0.1:{redis.port}/0"
        with (
            WorkerProcess(user_url, concurrency=1, logdir=str(tmp_path)) as worker,
            TaskClient(user_url) as client,
            TaskClient(default_url) as default_client,
        ):
            worker.start()
            assert client.add(4, 7) == 11  # broker and result backend both log in as alice
            assert default_client.mul(6, 7) == 42
            shown = [repr(client), repr(client.settings), repr(client.add.submit(1, 1))]

            intruder_url = f"redis://alice:{WRONG_PASSWORD}@127.0.0.1:{redis.port}/0"
            with TaskClient(intruder_url) as intruder, pytest.raises(BrokerUnavailable) as refused:
                intruder.add.submit(1, 2)
            assert "invalid username-password pair" in str(refused.value)
            assert refused.value.url == f"redis://alice:***@127.0.0.1:{redis.port}/0"
            shown += [str(refused.value), repr(refused.value)]

            redis.stop()
            with pytest.raises(BrokerUnavailable) as down:
                client.add.submit(1, 2)
            with pytest.raises(BrokerUnavailable) as backend_down:
                client.add.handle("some-id").result(timeout=0.5)
            shown += [str(down.value), repr(down.value), str(backend_down.value), down.value.url]
            wait_until(lambda: "Cannot connect to" in worker.log(), 30, "the worker to log its reconnection")
        log = worker.log()

    assert "Connected to redis://alice:**@127.0.0.1" in log  # the user is shown, the password masked
    assert "task-server: broker redis://alice:***@127.0.0.1" in log
    for secret in (USER_PASSWORD, DEFAULT_PASSWORD, WRONG_PASSWORD):
        assert secret not in log
        for text in shown:
            assert secret not in text, text
