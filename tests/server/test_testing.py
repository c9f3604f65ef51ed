"""The process helpers: they never leave a redis-server or worker behind, even when their starter is
killed, and they start servers on ports that no other connection can take first."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import amqp
import pytest

from task_client import TaskClient
from task_server.testing import VHOST_BATCH, RabbitMQProcess, RedisProcess, WorkerProcess, free_port, wait_until

STARTER = (
    "import time\n"
    "from task_server.testing import RedisProcess\n"
    "redis = RedisProcess().start()\n"
    "print(redis.pid, flush=True)\n"
    "time.sleep(60)\n"
)


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_a_redis_server_dies_with_the_process_that_started_it() -> None:
    starter = subprocess.Popen([sys.executable, "-c", STARTER], stdout=subprocess.PIPE, text=True)
    assert starter.stdout is not None
    redis_pid = int(starter.stdout.readline())
    assert not _gone(redis_pid)
    os.kill(starter.pid, signal.SIGKILL)  # no chance to run its own clean-up
    starter.wait(timeout=10)
    starter.stdout.close()
    wait_until(lambda: _gone(redis_pid), 10, "the orphaned redis-server to exit")


def test_free_ports_lie_below_the_ephemeral_range_and_are_never_handed_out_twice() -> None:
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    ports = [free_port() for _ in range(200)]
    assert len(set(ports)) == len(ports)
    # An outgoing connection takes its local port from the ephemeral range: never one of these.
    assert all(1024 <= port < low for port in ports)


def test_a_rabbitmq_node_that_cannot_start_is_launched_again_on_new_ports() -> None:
    node = RabbitMQProcess()
    first_name = node.nodename
    # Another program holds the node's distribution port: this launch exits (dist_port_already_used).
    with socket.socket() as squatter, node:
        squatter.bind(("127.0.0.1", int(node.env["RABBITMQ_DIST_PORT"])))
        squatter.listen()
        with pytest.warns(UserWarning, match="dist_port_already_used"):
            node.start(timeout=60)
        assert node.nodename != first_name
        assert node.ctl("status").returncode == 0


@pytest.mark.e2e
@pytest.mark.parametrize("busy", [False, True], ids=["idle", "busy"])
def test_a_worker_stops_with_every_process_reaped_whether_its_pool_is_idle_or_busy(
    busy: bool, private_redis: RedisProcess, tmp_path: Path
) -> None:
    # The stop asks the main process alone first (a warm shutdown); a pool process still running a
    # call after `interrupt_after` gets SIGTERM too. Either way nothing of the worker is left.
    worker = WorkerProcess(private_redis.url, result_backend=private_redis.url, concurrency=1, logdir=str(tmp_path))
    worker.start()
    pids = [worker.pid, *worker.children()]
    with TaskClient(private_redis.url, private_redis.url) as client:
        if busy:
            handle = client.count_to.submit(10_000, delay=0.01)  # 100 s of work
            wait_until(lambda: f"reports.count_to[{handle.id}] received" in worker.log(), 30, "the call to start")
        worker.stop(grace=30)
    assert all(_gone(pid) for pid in pids), worker.log()[-2000:]
    assert "Warm shutdown" in worker.log()


@pytest.mark.e2e
def test_fresh_virtual_hosts_are_made_in_batches_each_new_and_usable_and_deleted_later(
    rabbitmq: RabbitMQProcess,
) -> None:
    made = [rabbitmq.fresh_vhost("batch") for _ in range(VHOST_BATCH + 1)]  # two batches
    names = [name for name, _ in made]
    assert len(set(names)) == len(names)
    for name, url in made:
        assert url == rabbitmq.url_for(name)
        connection = amqp.Connection(f"127.0.0.1:{rabbitmq.port}", userid="guest", password="guest", virtual_host=name)
        connection.connect()
        try:
            connection.channel().queue_declare("q", auto_delete=True)
        finally:
            connection.close()
    for name in names:
        rabbitmq.delete_vhost_later(name)
    rabbitmq.reap()
    assert not set(names) & set(rabbitmq.ctl("list_vhosts", "--silent").stdout.split())
