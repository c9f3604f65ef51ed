"""Which declared contracts a worker runs on its event loop (`task_server._inline`)."""

from __future__ import annotations

import logging
import socket
from types import SimpleNamespace
from typing import Any

from celery import Celery
from celery.worker.state import reserved_requests

from task_server._inline import BUSY_SPELL, SLOW, LoopPool, LoopServing, _OnTheLoop


def test_a_declared_contract_runs_on_the_loop_until_one_slow_run_there() -> None:
    serving = LoopServing()
    assert serving.on_loop("math.add")
    serving.record("math.add", SLOW / 2)  # under SLOW: stays
    assert serving.on_loop("math.add")
    serving.record("math.add", SLOW * 2)
    assert not serving.on_loop("math.add")
    serving.record("math.add", 0.0)  # quick runs never bring it back
    assert not serving.on_loop("math.add")
    assert serving.on_loop("math.mul")  # each contract on its own


def test_a_call_on_the_loop_builds_no_debug_repr_of_its_arguments() -> None:
    """Celery's pools log every call at DEBUG once started with DEBUG on; the loop's pool is started
    like them, so with DEBUG off it never writes out the arguments' reprs (measured per call)."""
    logging.getLogger("celery.pool").setLevel(logging.WARNING)
    shown: list[str] = []

    class Argument:
        def __repr__(self) -> str:
            shown.append("repr")
            return "Argument()"

    ran: list[Argument] = []
    pool = _OnTheLoop(Celery("test-inline", set_as_current=False))
    pool.apply_async(ran.append, (Argument(),))
    assert len(ran) == 1
    assert shown == []


class _Recording:
    """A stand-in for the thread pool: records what it is handed."""

    limit = 8

    def __init__(self) -> None:
        self.handed: list[Any] = []

    def apply_async(self, target: Any, args: Any = None, kwargs: Any = None, **options: Any) -> None:
        self.handed.append(args)


class _Request:
    """A request as Celery's `reserved_requests` (a weak set) holds one."""


def _consumer(driver_type: str, sock: socket.socket) -> Any:
    transport = SimpleNamespace(driver_type=driver_type)
    amqp_connection = SimpleNamespace(sock=sock, transport=SimpleNamespace(_read_buffer=b""))
    return SimpleNamespace(connection=SimpleNamespace(transport=transport, connected=True, connection=amqp_connection))


def test_on_rabbitmq_calls_go_to_threads_while_more_frames_wait_and_a_spell_after() -> None:
    now = [100.0]
    threads = _Recording()
    ran: list[str] = []
    ours, broker = socket.socketpair()
    with ours, broker:
        pool = LoopPool(
            threads, "math.add", Celery("test-busy", set_as_current=False), _consumer("amqp", ours), lambda: now[0]
        )
        pool.apply_async(ran.append, ("alone",))
        assert ran == ["alone"] and threads.handed == []  # nothing waiting: on the loop
        broker.sendall(b"\x01")  # the next delivery's first bytes
        pool.apply_async(ran.append, ("queued behind",))
        assert threads.handed == [("queued behind",)]
        ours.recv(1)
        now[0] += BUSY_SPELL / 2
        pool.apply_async(ran.append, ("in the spell",))
        assert threads.handed[-1] == ("in the spell",)
        now[0] += BUSY_SPELL * 2
        pool.apply_async(ran.append, ("alone again",))
        assert ran == ["alone", "alone again"]


def test_on_rabbitmq_calls_go_to_threads_while_frames_already_read_wait_in_py_amqp_buffer() -> None:
    """The loop reads deliveries in bursts (`_internals.amqp_reads`): the rest of a burst is in
    py-amqp's read buffer, not on the socket, while the first delivery of it is handed out."""
    threads = _Recording()
    ran: list[str] = []
    ours, broker = socket.socketpair()
    with ours, broker:
        consumer = _consumer("amqp", ours)
        pool = LoopPool(threads, "math.add", Celery("test-busy", set_as_current=False), consumer)
        consumer.connection.connection.transport._read_buffer = b"\x01"  # the next delivery, read already
        pool.apply_async(ran.append, ("first of a burst",))
        assert ran == [] and threads.handed == [("first of a burst",)]


def test_on_rabbitmq_calls_go_to_threads_while_another_call_is_in_hand() -> None:
    threads = _Recording()
    ran: list[str] = []
    this, other = _Request(), _Request()
    ours, broker = socket.socketpair()
    with ours, broker:
        pool = LoopPool(threads, "math.add", Celery("test-busy", set_as_current=False), _consumer("amqp", ours))
        reserved_requests.update({this, other})  # Celery's record of the calls a worker holds
        try:
            pool.apply_async(ran.append, ("two in hand",))
        finally:
            reserved_requests.difference_update({this, other})
        assert ran == [] and threads.handed == [("two in hand",)]


def test_on_redis_a_declared_contract_stays_on_the_loop_whatever_waits() -> None:
    threads = _Recording()
    ran: list[str] = []
    ours, broker = socket.socketpair()
    with ours, broker:
        broker.sendall(b"\x01")
        pool = LoopPool(threads, "math.add", Celery("test-busy", set_as_current=False), _consumer("redis", ours))
        pool.apply_async(ran.append, ("on redis",))
        assert ran == ["on redis"] and threads.handed == []
