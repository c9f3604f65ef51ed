"""Which declared contracts a worker runs on its event loop (`task_server._inline.LoopServing`)."""

from __future__ import annotations

import logging

from celery import Celery

from task_server._inline import SLOW, LoopServing, _OnTheLoop


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
