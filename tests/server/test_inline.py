"""Which declared contracts a worker runs on its event loop (`task_server._inline.LoopServing`)."""

from __future__ import annotations

from task_server._inline import SLOW, LoopServing


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
