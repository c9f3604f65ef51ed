"""A worker and a client each under the least-privilege Redis ACL user that the docs give for its side."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import redis

from task_client import CancelResult, TaskCancelled, TaskClient, TaskFailed
from task_contracts import CATALOG
from task_server.testing import RedisProcess, WorkerProcess

from ..conftest import REPO_ROOT

pytestmark = pytest.mark.e2e

PASSWORDS = {"task-worker": "acl-worker-pw", "task-client": "acl-client-pw"}


def documented_rules(page: str, user: str) -> list[str]:
    """The rules of the one-line ACL file entry `user <user> ...` on a docs page, password replaced."""
    lines = [line for line in (REPO_ROOT / "docs" / page).read_text().splitlines() if line.startswith(f"user {user} ")]
    assert len(lines) == 1, f"docs/{page} should hold exactly one `user {user} ...` line"
    rules = lines[0].split()[2:]
    assert sum(rule.startswith(">") for rule in rules) == 1
    return [f">{PASSWORDS[user]}" if rule.startswith(">") else rule for rule in rules]


@pytest.mark.parametrize(("page", "user"), [("server.md", "task-worker"), ("client.md", "task-client")])
def test_the_documented_lines_cover_every_contract_queue(page: str, user: str) -> None:
    rules = documented_rules(page, user)
    for queue in [*CATALOG.queues(), "celery"]:
        assert f"~{queue}*" in rules, f"{user} cannot reach queue {queue}"
    assert "-@all" in rules and "~*" not in rules and "&*" not in rules and "+@all" not in rules


def test_worker_and_client_under_their_documented_acl_users(tmp_path: Path) -> None:
    with RedisProcess(workdir=str(tmp_path)) as server:
        server.start()
        admin = redis.Redis.from_url(server.url)
        try:
            for page, user in (("server.md", "task-worker"), ("client.md", "task-client")):
                admin.execute_command("ACL", "SETUSER", user, *documented_rules(page, user))
            admin.execute_command("ACL", "LOG", "RESET")
            worker_url = server.url.replace("redis://", f"redis://task-worker:{PASSWORDS['task-worker']}@")
            client_url = server.url.replace("redis://", f"redis://task-client:{PASSWORDS['task-client']}@")
            with WorkerProcess(worker_url, concurrency=2, logdir=str(tmp_path)) as worker:
                worker.start()
                with TaskClient(client_url) as client:
                    assert client.add(4, 7) == 11
                    assert client.add.map([(i, 1) for i in range(20)]) == [i + 1 for i in range(20)]
                    assert [h.result(timeout=30) for h in client.add.submit_many([(1, 2), (3, 4)])] == [3, 7]
                    # A scheduled call takes kombu's publishing path rather than the direct LPUSH.
                    assert client.add.with_options(countdown=0.2)(2, 3) == 5
                    # Cancel by id: the client cannot search queues or unacked messages under its line,
                    # so the cancel goes ahead as a durable mark with the call's token.
                    queued = client.add.with_options(countdown=30).submit(1, 1)
                    assert client.cancel(queued.id) is CancelResult.CANCELLED
                    with pytest.raises(TaskCancelled):
                        queued.result(timeout=30)
                    handle = client.count_to.submit(3, delay=0.2)
                    assert handle.result(timeout=30) == 3
                    with pytest.raises(TaskFailed, match="ZeroDivisionError"):
                        client.div(1, 0)
                    (info,) = client.workers(timeout=2.0)
                    assert info.hostname == worker.hostname and set(CATALOG.names()) <= set(info.contracts)
                    assert asyncio.run(client.aio.add(20, 22)) == 42
                    users = {entry["user"] for entry in admin.client_list()}
                    assert {"task-worker", "task-client"} <= users
                log = worker.log()
            # Every refusal Redis logged: none, but the client library's `CLIENT SETINFO` greeting, which
            # it sends on connecting and drops when refused (Redis 6.2 logs it; 7.0 does not know it).
            # A cancel by id first looks for the call's message on the queues and among unacknowledged
            # ones; the client line allows neither, so the client goes ahead without looking.
            refused = {(entry["username"], entry["object"]) for entry in admin.acl_log(count=128)}
            tolerated = {("task-worker", "client"), ("task-client", "client")}
            assert refused <= tolerated | {("task-client", "hscan"), ("task-client", "lrange")}, refused
            assert "NOPERM" not in log and "no permissions" not in log

            # The users are really restricted: nothing beyond their lines.
            for url in (worker_url, client_url):
                with redis.Redis.from_url(url) as restricted:
                    with pytest.raises(redis.exceptions.NoPermissionError):
                        restricted.get("some-other-app:secret")
                    with pytest.raises(redis.exceptions.NoPermissionError):
                        restricted.flushall()
                    with pytest.raises(redis.exceptions.NoPermissionError):
                        restricted.keys("*")
            with redis.Redis.from_url(client_url) as restricted:
                with pytest.raises(redis.exceptions.NoPermissionError):
                    restricted.execute_command("SETEX", "celery-task-meta-forged", 60, "{}")  # storing: the worker's
                # The workers' bookkeeping is out of a client's reach: kombu's unacked messages (crash
                # recovery), the start counts, the fleet-wide limits' leases.
                bookkeeping = [
                    ("HSET", "unacked", "tag", "[1]"),
                    ("DEL", "unacked"),
                    ("ZADD", "unacked_index", "0", "tag"),
                    ("DEL", "unacked_mutex"),
                    ("SET", "task-sdk-deliveries-someone", "9"),
                    ("DEL", "task-sdk-concurrency-math.add"),
                ]
                for command in bookkeeping:
                    with pytest.raises(redis.exceptions.NoPermissionError):
                        restricted.execute_command(*command)
        finally:
            admin.close()
