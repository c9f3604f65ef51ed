"""Which light contracts a worker runs on its event loop (`task_server._inline.LoopServing`)."""

from __future__ import annotations

from task_server._inline import QUALIFYING, QUICK, SLOW, LoopServing


def test_a_contract_earns_the_loop_with_quick_runs_in_a_row_on_threads() -> None:
    serving = LoopServing()
    for _ in range(QUALIFYING - 1):
        serving.record("math.add", QUICK / 2, on_loop=False)
    assert not serving.on_loop("math.add")
    serving.record("math.add", QUICK / 2, on_loop=False)
    assert serving.on_loop("math.add")
    assert not serving.on_loop("math.mul")  # each contract on its own runs


def test_one_slower_run_starts_the_count_again() -> None:
    serving = LoopServing()
    for _ in range(QUALIFYING - 1):
        serving.record("math.add", QUICK / 2, on_loop=False)
    serving.record("math.add", QUICK * 2, on_loop=False)
    for _ in range(QUALIFYING - 1):
        serving.record("math.add", QUICK / 2, on_loop=False)
    assert not serving.on_loop("math.add")


def test_a_slow_run_on_the_loop_sends_the_contract_back_to_threads_for_good() -> None:
    serving = LoopServing()
    for _ in range(QUALIFYING):
        serving.record("math.add", QUICK / 2, on_loop=False)
    serving.record("math.add", SLOW / 2, on_loop=True)  # slower than QUICK, still under SLOW: stays
    assert serving.on_loop("math.add")
    serving.record("math.add", SLOW * 2, on_loop=True)
    assert not serving.on_loop("math.add")
    for _ in range(QUALIFYING * 2):
        serving.record("math.add", QUICK / 2, on_loop=False)
    assert not serving.on_loop("math.add")
