"""The two step runners agree: the same steps give the same value, timeout and error on both faces."""

from __future__ import annotations

import asyncio
import concurrent.futures
from typing import Any

import pytest

from task_client._steps import TIMED_OUT, Blocking, Steps, Wait, run_async, run_sync

# The runners only touch the producer for `Publish` steps, which these steps never yield.
NO_PRODUCER: Any = None


def wait_then_block(future: concurrent.futures.Future[int], timeout: float, log: list[str]) -> Steps[Any]:
    try:
        value = yield Wait(future, timeout)
    except ValueError as error:
        log.append(f"mapped {error}")
        raise LookupError(str(error)) from None
    except BaseException:
        log.append("stopped")
        raise
    if value is TIMED_OUT:
        return "timed out"
    doubled = yield Blocking(lambda: value * 2)
    return doubled


def run_both(make: Any) -> tuple[Any, Any]:
    outcomes = []
    for runner in ("sync", "async"):
        steps = make()
        try:
            if runner == "sync":
                outcomes.append(run_sync(NO_PRODUCER, steps))
            else:
                outcomes.append(asyncio.run(run_async(NO_PRODUCER, steps)))
        except Exception as error:
            outcomes.append((type(error), str(error)))
    return outcomes[0], outcomes[1]


def resolved(value: int | None = None, error: Exception | None = None) -> concurrent.futures.Future[int]:
    future: concurrent.futures.Future[int] = concurrent.futures.Future()
    if error is not None:
        future.set_exception(error)
    elif value is not None:
        future.set_result(value)
    return future


def test_a_value_flows_through_wait_and_blocking_steps_alike() -> None:
    assert run_both(lambda: wait_then_block(resolved(21), 1.0, [])) == (42, 42)


def test_a_bound_that_runs_out_is_timed_out_on_both() -> None:
    assert run_both(lambda: wait_then_block(resolved(), 0.05, [])) == ("timed out", "timed out")


def test_an_error_is_thrown_into_the_steps_to_be_mapped_on_both() -> None:
    log: list[str] = []
    sync, aio = run_both(lambda: wait_then_block(resolved(error=ValueError("boom")), 1.0, log))
    assert sync == aio == (LookupError, "boom")
    assert log == ["mapped boom", "mapped boom"]


def test_a_future_failing_with_its_own_timeout_error_is_not_taken_for_the_bound() -> None:
    sync, aio = run_both(lambda: wait_then_block(resolved(error=TimeoutError("its own")), 1.0, []))
    assert sync == aio == (TimeoutError, "its own")


def test_cancelling_an_async_caller_stops_the_steps() -> None:
    log: list[str] = []

    async def main() -> None:
        waiting = asyncio.ensure_future(run_async(NO_PRODUCER, wait_then_block(resolved(), 30, log)))
        await asyncio.sleep(0)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting

    asyncio.run(main())
    assert log == ["stopped"]
