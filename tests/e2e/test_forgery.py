"""Forged and cancelled calls (issue 19, item 7), against real workers and a real Redis.

Each attack is made as a user who may push to a queue, write a key or publish on a channel would
make it: a message reusing a pending call's id, a revoke mark or a cancel from someone else, a result
key SET before the worker answers, a PUBLISH on the caller's reply channel. On ab98f7e each of them
was taken as the call's outcome. See docs/security.md.
"""

from __future__ import annotations

import concurrent.futures
import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from celery import Celery

from task_client import CancelResult, RecordRefused, TaskCancelled, TaskClient, TaskFailed
from task_client._runtime import CallOptions
from task_contracts.wire import (
    CALL_DIGEST_FIELD,
    REMOTE_DUPLICATE_ID,
    REPLY_CHANNEL_PREFIX,
    RESULT_KEY_PREFIX,
    REVOKED_KEY_PREFIX,
    SIGNATURE_FIELD,
    SIGNER_FIELD,
)
from task_server.testing import RedisProcess, WorkerProcess, wait_until
from tests.policies import contracts as policy_contracts
from tests.policies.fixtures import Markers, StartWorker, markers, policy_client, start_worker

from ..brokers import Broker
from ..conftest import REPO_ROOT
from .raw_messages import envelope, json_body

__all__ = ["markers", "policy_client", "start_worker"]

pytestmark = pytest.mark.e2e

BOUND = 60.0  # generous: the machine is shared


def wait_for_log(worker: WorkerProcess, text: str) -> None:
    wait_until(lambda: text in worker.log(), 30, f"{text!r} in the log of {worker.hostname}")


def push_impostor(url: str, task_id: str, args: list[int], reply_to: str | None = None) -> None:
    """A message with only LPUSH: `math.add` of `args`, reusing `task_id`."""
    item = json.loads(envelope("math.add", json_body(args, {}), task_id=task_id, queue="math"))
    if reply_to:
        item["properties"]["reply_to"] = reply_to
    with redis.Redis.from_url(url) as connection:
        connection.lpush("math", json.dumps(item))


def forged_record(task_id: str, value: object = 2000) -> str:
    return json.dumps(
        {
            "status": "SUCCESS",
            "result": value,
            "traceback": None,
            "children": [],
            "date_done": "2026-01-01T00:00:00+00:00",
            "task_id": task_id,
        }
    )


# -- a message reusing a call's id (LPUSH only) ---------------------------------------------------


def test_a_message_reusing_a_pending_calls_id_never_gives_its_value_to_the_caller(
    broker: Broker, worker: WorkerProcess, client: TaskClient
) -> None:
    handle = client.add.with_options(countdown=3).submit(4, 7)
    push_impostor(broker.url, handle.id, [1000, 1000])  # runs first: the victim's call is not due yet
    # The impostor's record (2000) is refused by its digest; the genuine call, once due, is refused by
    # the worker without overwriting anything, and the caller learns why on its reply channel.
    with pytest.raises(TaskFailed) as caught:
        handle.result(timeout=BOUND)
    assert caught.value.remote_type == REMOTE_DUPLICATE_ID
    wait_for_log(worker, f"{handle.id}]: refused: another call with other arguments already used this id")
    assert "delivered again after it had finished" not in worker.log().split(handle.id, 1)[-1][:400]


def test_a_message_reusing_a_finished_calls_id_is_refused_and_leaves_its_record_alone(
    broker: Broker, worker: WorkerProcess, client: TaskClient
) -> None:
    handle = client.add.submit(4, 7)
    assert handle.result(timeout=BOUND) == 11
    push_impostor(broker.url, handle.id, [1000, 1000], reply_to=f"{REPLY_CHANNEL_PREFIX}attacker")
    wait_for_log(worker, f"{handle.id}]: refused: another call with other arguments already used this id")
    with redis.Redis.from_url(broker.result_backend) as store:
        record = json.loads(store.get(RESULT_KEY_PREFIX + handle.id) or b"{}")
    assert (record["status"], record["result"]) == ("SUCCESS", 11)
    assert client.add.handle(handle.id).result(timeout=BOUND) == 11


def test_a_redelivery_of_the_same_message_is_still_recognised(
    broker: Broker, worker: WorkerProcess, client: TaskClient
) -> None:
    """The digest tells an impostor from the same call delivered again: that one is not refused."""
    handle = client.add.submit(2, 3)
    assert handle.result(timeout=BOUND) == 5
    push_impostor(broker.url, handle.id, [2, 3])
    wait_for_log(worker, f"{handle.id}]: delivered again after it had finished; not run again")


# -- cancels by someone else ---------------------------------------------------------------------


def test_a_revoke_mark_written_by_someone_else_is_ignored(
    broker: Broker, worker: WorkerProcess, client: TaskClient
) -> None:
    handle = client.add.with_options(countdown=2).submit(4, 7)
    with redis.Redis.from_url(broker.result_backend) as store:
        store.set(REVOKED_KEY_PREFIX + handle.id, "cancelled", ex=600)
    assert handle.result(timeout=BOUND) == 11
    wait_for_log(worker, f"{handle.id}]: ignored a revoke mark without the caller's cancel token")


def test_another_client_cannot_cancel_a_call(broker: Broker, worker: WorkerProcess, client: TaskClient) -> None:
    handle = client.add.with_options(countdown=2).submit(4, 7)
    with TaskClient(broker.url, broker.result_backend) as other:  # another cancel secret
        other.cancel(handle.id)  # writes a mark and a REVOKED record with the wrong token
    assert handle.result(timeout=BOUND) == 11
    # The caller itself still cancels its calls.
    mine = client.add.with_options(countdown=30).submit(1, 1)
    assert mine.cancel() is CancelResult.CANCELLED


def test_a_retried_call_keeps_its_cancel_token_check(
    redis_url: str, policy_client: TaskClient, start_worker: StartWorker, markers: Markers
) -> None:
    """A retry is a new message the worker publishes itself: it must carry the call's `cancel_hash`,
    or any revoke mark (anyone's) would cancel every attempt after the first."""
    worker = start_worker(concurrency=1)
    name = uuid.uuid4().hex[:12]
    flaky = policy_client.task(policy_contracts.flaky).with_options(timeout=BOUND)
    handle = flaky.with_options(countdown=1).submit(name, 2)  # fails twice, then returns 3
    with redis.Redis.from_url(redis_url) as store:
        store.set(REVOKED_KEY_PREFIX + handle.id, "cancelled", ex=600)
    assert handle.result() == 3
    assert worker.log().count(f"{handle.id}]: ignored a revoke mark without the caller's cancel token") == 3
    # The caller's own cancel still stops a retried call between two attempts.
    name = uuid.uuid4().hex[:12]
    mine = flaky.submit(name, 10)
    wait_until(lambda: mine.status == "RETRY", 30, f"the retry of {mine.id}", interval=0.01)
    assert mine.cancel() is CancelResult.CANCELLED
    with pytest.raises(TaskCancelled):
        mine.result()
    wait_for_log(worker, f"{mine.id}]: cancelled before it started; not run")
    assert markers.starts(name) == 1


def stock_celery(url: str) -> Celery:
    """A plain Celery app on the same Redis: what anyone may use to broadcast remote-control commands."""
    return Celery("someone-else", broker=url, set_as_current=False)


def test_a_celery_revoke_from_someone_else_neither_stops_nor_drops_a_call(
    redis_url: str, policy_client: TaskClient, start_worker: StartWorker, markers: Markers
) -> None:
    worker = start_worker(concurrency=1)
    # Every worker on this Redis hears the broadcast, also one that does not hold the call (in a full
    # run the session's `worker` shares this Redis); Celery 5.7 stores a REVOKED record at once there,
    # which the caller took when it read the record before the call's own result replaced it.
    bystander = start_worker("--queues", "celery", concurrency=1)
    other = stock_celery(redis_url)
    try:
        # Running, interruptible: a revoke with terminate=True would have stopped it.
        name = uuid.uuid4().hex[:12]
        running = policy_client.task(policy_contracts.hold).with_options(timeout=BOUND).submit(name, 25)
        markers.wait_for_start(name)
        other.control.revoke(running.id, terminate=True, signal="SIGTERM")
        wait_for_log(worker, f"{running.id}: ignored a Celery revoke without the caller's cancel token")
        with redis.Redis.from_url(redis_url) as store:
            record_key, left_alone = RESULT_KEY_PREFIX + running.id, f"task {running.id}: a remote revoke of a call"

            def heard() -> bool:  # the bystander left the record alone, or stored one
                return left_alone in bystander.log() or bool(store.exists(record_key))

            wait_until(heard, 30, f"the revoke of {running.id} handled by {bystander.hostname}")
            assert store.get(record_key) is None
        markers.release(name)
        assert isinstance(running.result(), int)
        # Held by the worker until it is due: a revoke would have dropped it then.
        scheduled = policy_client.task(policy_contracts.stamp).with_options(countdown=3, timeout=BOUND).submit("s")
        wait_for_log(worker, f"policies.stamp[{scheduled.id}] received")
        other.control.revoke(scheduled.id)
        wait_for_log(worker, f"{scheduled.id}: ignored a Celery revoke without the caller's cancel token")
        assert scheduled.result() > 0
        # Revoked before its message arrived: the message is taken out of the revoked set and runs.
        message = policy_client._runtime.prepare_call(
            policy_contracts.stamp, ("early",), {}, CallOptions(timeout=BOUND)
        )
        other.control.revoke(message.task_id)
        wait_for_log(worker, f"revoked: {message.task_id}")
        # Celery would store a REVOKED record for the pending call at once, which its caller would take.
        with redis.Redis.from_url(redis_url) as store:
            assert store.get(RESULT_KEY_PREFIX + message.task_id) is None
        policy_client._runtime.producer.publish(message)
        wait_for_log(worker, f"{message.task_id}: ignored a Celery revoke without the caller's cancel token")
        assert policy_client.task(policy_contracts.stamp).handle(message.task_id).result(timeout=BOUND) > 0
    finally:
        other.close()
    # The caller's own cancel still stops a running interruptible call (through the same revoke).
    name = uuid.uuid4().hex[:12]
    mine = policy_client.task(policy_contracts.hold).with_options(timeout=BOUND).submit(name, 25)
    markers.wait_for_start(name)
    assert mine.cancel() is CancelResult.TERMINATED
    with pytest.raises(TaskCancelled):
        mine.result()


def test_remote_control_hello_and_stamped_revokes_from_someone_else_drop_no_call(
    broker: Broker, worker: WorkerProcess, client: TaskClient
) -> None:
    """Two more of Celery's remote-control commands revoke: `hello` (mingle) merges the ids it is
    sent into the worker's revoked set, and `revoke_by_stamped_headers` revokes by stamps."""
    other = stock_celery(broker.url)
    try:
        held = client.add.with_options(countdown=3).submit(4, 7)  # held by the worker until it is due
        wait_for_log(worker, f"math.add[{held.id}] received")
        early = client._runtime.prepare_call(client.add._contract, (5, 6), {}, CallOptions(timeout=BOUND))
        revoked = [held.id, early.task_id]
        replies = other.control.broadcast(
            "hello", arguments={"from_node": "intruder@nowhere", "revoked": revoked}, reply=True, timeout=3
        )
        assert any(worker.hostname in reply for reply in replies), replies
        wait_for_log(worker, "ignored 1 revoked ids sent by 'intruder@nowhere' in a hello")
        client._runtime.producer.publish(early)  # its message comes after the hello
        assert held.result(timeout=BOUND) == 11  # was dropped as revoked when due
        assert client.add.handle(early.task_id).result(timeout=BOUND) == 11
        replies = other.control.broadcast(
            "revoke_by_stamped_headers", arguments={"headers": {"stamp": ["x"]}}, reply=True, timeout=3
        )
        answer = next(reply[worker.hostname] for reply in replies if worker.hostname in reply)
        assert "revoke_by_stamped_headers is disabled" in answer["error"], answer
    finally:
        other.close()
    # The caller's own cancel still works.
    mine = client.add.with_options(countdown=30).submit(1, 1)
    assert mine.cancel() is CancelResult.CANCELLED


# -- signed records: forged result keys and reply-channel messages ---------------------------------


class Signed:
    def __init__(self, url: str, worker: WorkerProcess, public_key: Path) -> None:
        self.url, self.worker, self.public_key = url, worker, public_key

    def client(self) -> TaskClient:
        return TaskClient(self.url, verify_key_file=str(self.public_key))


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Signed]:
    """A Redis and a worker of their own; the worker signs with a key made by `task-server keygen`."""
    workdir = tmp_path_factory.mktemp("signed")
    made = subprocess.run(
        [sys.executable, "-m", "task_server", "keygen", str(workdir / "keys")],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO_ROOT,
    )
    assert made.returncode == 0, made.stderr
    private = workdir / "keys" / "record-signing.key"
    assert private.stat().st_mode & 0o777 == 0o600
    with RedisProcess(workdir=str(workdir)) as server:
        server.start()
        with WorkerProcess(
            server.url, concurrency=1, logdir=str(workdir), env={"TASK_SIGNING_KEY_FILE": str(private)}
        ) as worker:
            worker.start()
            yield Signed(server.url, worker, workdir / "keys" / "record-signing.pub")


def test_signed_records_verify_and_stay_standard_celery_records(signed: Signed) -> None:
    with signed.client() as client:
        assert client.add(4, 7) == 11
        assert client.add.map([(i, 1) for i in range(30)]) == [i + 1 for i in range(30)]
        handle = client.add.submit(20, 22)
        assert handle.result(timeout=BOUND) == 42
        with pytest.raises(TaskFailed, match="ZeroDivisionError"):
            client.div(1, 0)
    with redis.Redis.from_url(signed.url) as store:
        record = json.loads(store.get(RESULT_KEY_PREFIX + handle.id) or b"{}")
    # A stock reader sees the usual fields; the added ones are extra.
    assert (record["status"], record["result"], record["task_id"]) == ("SUCCESS", 42, handle.id)
    assert {SIGNATURE_FIELD, SIGNER_FIELD, CALL_DIGEST_FIELD} <= set(record)
    assert "signing result records with key" in signed.worker.log()


def test_a_result_key_set_before_the_worker_answers_is_refused(signed: Signed) -> None:
    with signed.client() as client, redis.Redis.from_url(signed.url) as attacker:
        handle = client.add.with_options(countdown=2).submit(4, 7)
        attacker.set(RESULT_KEY_PREFIX + handle.id, forged_record(handle.id), ex=600)
        attacker.publish(RESULT_KEY_PREFIX + handle.id, forged_record(handle.id))
        assert handle.result(timeout=BOUND) == 11


def test_a_forged_publish_on_the_reply_channel_is_refused(signed: Signed) -> None:
    with (
        signed.client() as client,
        redis.Redis.from_url(signed.url) as attacker,
        concurrent.futures.ThreadPoolExecutor(1) as waiter,
    ):
        handle = client.add.with_options(countdown=2).submit(4, 7)
        waiting = waiter.submit(handle.result, timeout=BOUND)
        reply_channel = client._runtime.watcher.reply_channel  # what an attacker would read off a message

        def listening() -> bool:
            counts = dict(attacker.pubsub_numsub(reply_channel, RESULT_KEY_PREFIX + handle.id))
            return all(count >= 1 for count in counts.values())

        wait_until(listening, 30, "the caller to listen")
        assert attacker.publish(reply_channel, forged_record(handle.id)) == 1
        assert waiting.result(timeout=BOUND) == 11
        assert client._runtime.watcher.check.refused(handle.id) == "not signed by a trusted worker key"


def test_only_a_forged_record_ends_the_wait_with_a_typed_error(signed: Signed) -> None:
    with signed.client() as client, redis.Redis.from_url(signed.url) as attacker:
        handle = client.add.with_options(queue="no-worker-consumes-this").submit(4, 7)
        attacker.set(RESULT_KEY_PREFIX + handle.id, forged_record(handle.id), ex=600)
        with pytest.raises(RecordRefused) as caught:
            handle.result(timeout=1)
        assert caught.value.reason == "not signed by a trusted worker key"
        assert handle.cancel() is CancelResult.CANCELLED  # its own cancel is accepted unsigned
        with pytest.raises(TaskCancelled):
            handle.result(timeout=BOUND)
