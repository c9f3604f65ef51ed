"""Schedules are checked against the contracts before a beat starts: every problem named, exit 3."""

from __future__ import annotations

from datetime import timedelta

import pytest
from click.testing import CliRunner

from task_contracts import CATALOG, ContractCatalog, ContractDeclarationError, Crontab, Schedule, math
from task_server._beat import beat_entries
from task_server._cli import main
from task_server._errors import ScheduleError

GOOD = [
    Schedule(math.add, args=(1, 2), every=timedelta(seconds=30)),
    Schedule(math.xsum, kwargs={"numbers": [1, 2]}, cron="*/5 * * * *"),
    Schedule(math.mul, args=(2, 3), cron=Crontab(minute="0", hour="4", day_of_week="mon-fri"), name="nightly"),
]
BAD = [
    Schedule(math.add, args=("a", 2), every=1),
    Schedule(math.mul, args=(1,), cron="*/5 * * *"),
    Schedule(math.xsum, args=([1],), cron="61 * * * *"),
    Schedule(math.div, args=(1, 2), every=0),
]


def test_entries_carry_wire_arguments_queue_shape_and_timing() -> None:
    entries = beat_entries(GOOD, CATALOG)
    assert list(entries) == ["math.add every 30 s", "math.xsum cron */5 * * * *", "nightly"]
    add = entries["math.add every 30 s"]
    assert add["task"] == "math.add" and add["args"] == [1, 2] and add["schedule"] == timedelta(seconds=30)
    assert add["options"] == {"queue": "math", "headers": {"contract_shape": math.add.shape}}
    assert entries["math.xsum cron */5 * * * *"]["args"] == [[1, 2]]
    nightly = entries["nightly"]["schedule"]
    assert nightly.hour == {4} and nightly.minute == {0} and nightly.day_of_week == {1, 2, 3, 4, 5}


def test_every_problem_is_named_with_its_schedule() -> None:
    with pytest.raises(ScheduleError) as caught:
        beat_entries(BAD, CATALOG)
    problems = caught.value.problems
    assert problems[0].startswith("schedule 'math.add every 1 s': x: Input should be a valid integer")
    assert "schedule 'math.mul cron */5 * * *': y: Field required" in problems
    assert any(p.startswith("schedule 'math.mul cron */5 * * *': cron expression") for p in problems)
    assert any(p.startswith("schedule 'math.xsum cron 61 * * * *': cron 61 * * * *:") for p in problems)
    assert "schedule 'math.div every 0 s': every= must be positive, got 0" in problems


def test_a_contract_outside_the_catalog_and_a_shared_name_are_refused() -> None:
    only_add = ContractCatalog(math.add)
    twice = [Schedule(math.add, args=(1, 2), every=5), Schedule(math.add, args=(3, 4), every=5)]
    with pytest.raises(ScheduleError) as caught:
        beat_entries([*twice, Schedule(math.mul, args=(1, 2), every=5)], only_add)
    assert caught.value.problems == [
        "schedule 'math.add every 5 s': two schedules share this name; give one a name=",
        "schedule 'math.mul every 5 s': math.mul is not in the contract catalog",
    ]


def test_a_schedule_needs_exactly_one_timing() -> None:
    with pytest.raises(ContractDeclarationError, match="exactly one of every= or cron="):
        Schedule(math.add, args=(1, 2))
    with pytest.raises(ContractDeclarationError, match="exactly one of every= or cron="):
        Schedule(math.add, args=(1, 2), every=1, cron="* * * * *")


def test_beat_refuses_to_start_on_bad_schedules_with_exit_status_3() -> None:
    result = CliRunner().invoke(
        main, ["beat", "--broker-url", "redis://127.0.0.1:1/0", "--schedules", f"{__name__}:BAD"]
    )
    assert result.exit_code == 3, result.output
    assert "the schedules do not match the contracts" in result.output
    assert "schedule 'math.add every 1 s': x: Input should be a valid integer" in result.output


def test_beat_names_a_schedules_attribute_it_cannot_load() -> None:
    result = CliRunner().invoke(main, ["beat", "--schedules", f"{__name__}:MISSING"])
    assert result.exit_code == 2 and "MISSING" in result.output, result.output


ONLY_MUL = ContractCatalog(math.mul)


def test_beat_checks_the_schedules_against_the_catalog_it_is_given() -> None:
    result = CliRunner().invoke(
        main,
        [
            "beat",
            "--broker-url",
            "redis://127.0.0.1:1/0",
            "--schedules",
            f"{__name__}:GOOD",
            "--catalog",
            f"{__name__}:ONLY_MUL",
        ],
    )
    assert result.exit_code == 3, result.output
    assert "schedule 'math.add every 30 s': math.add is not in the contract catalog" in result.output
