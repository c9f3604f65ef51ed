"""Progress records become `Progress` values and text, without Redis."""

from __future__ import annotations

import io
import re

import pytest

from task_client import Progress, WorkerInfo
from task_client._inspect import contract_problems, contract_warnings
from task_client._progress import progress_from_record
from task_client._progressbar import ProgressDisplay, progress_line
from task_contracts import CATALOG, ContractCatalog, contract, math


def test_a_progress_record_becomes_a_progress() -> None:
    record = {"status": "PROGRESS", "result": {"done": 3, "total": 10, "message": "m"}, "task_id": "t"}
    assert progress_from_record(record) == Progress(3, 10, "m")
    assert Progress(3, 10).fraction == 0.3
    assert Progress(3, None).fraction is None and Progress(0, 0).fraction is None


@pytest.mark.parametrize(
    "record",
    [
        None,
        {"status": "SUCCESS", "result": 3},
        {"status": "PROGRESS", "result": "3 of 10"},
        {"status": "PROGRESS", "result": {"done": "3", "total": 10}},
        {"status": "PROGRESS", "result": {"done": True, "total": 10}},
        {"status": "PROGRESS", "result": {"done": 3, "total": "ten"}},
    ],
)
def test_other_or_malformed_records_give_no_progress(record: dict[str, object] | None) -> None:
    assert progress_from_record(record) is None


def test_text_forms() -> None:
    assert progress_line(Progress(3, 10, "counted to 3")) == "progress 3/10 (30%) counted to 3"
    assert progress_line(Progress(2.5, None)) == "progress 2.5/?"


def test_the_display_appends_lines_without_a_terminal_and_redraws_on_one() -> None:
    plain = io.StringIO()
    display = ProgressDisplay(plain, terminal=False)
    for report in (None, Progress(1, 2), Progress(1, 2), Progress(2, 2)):
        display.show(report)
    display.close()
    assert plain.getvalue() == "progress 1/2 (50%)\nprogress 2/2 (100%)\n"
    tty = Terminal()
    display = ProgressDisplay(tty, terminal=True)
    display.show(Progress(1, 4, "one"))
    display.show(Progress(1, 4, "one"))  # the same report: nothing drawn
    display.show(Progress(2.5, None, "unknown total"))
    display.show(Progress(4, 4, "done"))
    display.close()
    frames = tty.getvalue().split("\r")[1:]
    assert len(frames) == 3, frames
    assert "[#######" in frames[0] and "] 1/4   25%  one" in frames[0]
    assert "] 2.5  unknown total" in frames[1]
    assert re.search(r"\[#+\] 4/4  100%  done", frames[2]), frames[2]  # full: no empty cell left
    assert tty.getvalue().endswith("\n")


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_contract_problems_name_each_reason() -> None:
    everything = {item.name: item.fingerprint for item in CATALOG}
    good = WorkerInfo("w1@h", tuple(CATALOG.queues()), everything)
    assert contract_problems(CATALOG, [good]) == {}
    stale = WorkerInfo("w2@h", ("math",), {**everything, math.add.name: "0000"})
    math_only = WorkerInfo("w3@h", ("math",), {n: f for n, f in everything.items() if n != math.add.name})
    problems = contract_problems(CATALOG, [stale, math_only])
    assert problems["math.add"] == (
        f"served only with breaking differences: w2@h: another fingerprint (0000, here {math.add.fingerprint})"
    )
    assert problems["reports.count_to"] == "implemented by w2@h, w3@h but no worker consumes queue 'reports'"
    unconsumed = {item.name for item in CATALOG if item.queue != "math"}
    for name in unconsumed:
        queue = CATALOG.get(name).queue  # type: ignore[union-attr]
        assert problems[name] == f"implemented by w2@h, w3@h but no worker consumes queue '{queue}'"
    assert set(problems) == {"math.add", *unconsumed}
    assert set(contract_problems(CATALOG, [])) == set(CATALOG.names())


def test_a_compatible_difference_is_not_a_problem_and_a_breaking_one_is_named() -> None:
    # The worker serves a newer math.add with an optional z; this client's calls all run there.
    newer = contract(name="math.add", queue="math", timeout=10, idempotent=True)(_add_with_z)
    changed = contract(name="math.add", queue="math", timeout=10, idempotent=True)(_add_with_str_y)
    for served, expected in [(newer, {}), (changed, {"math.add": "y is str on the worker, int here"})]:
        worker = WorkerInfo(
            "w@h", ("math",), {"math.add": served.fingerprint}, shapes={"math.add": served.served_shape()}
        )
        found = contract_problems(ContractCatalog(math.add), [worker])
        assert {name: reason.split(": ", 2)[-1] for name, reason in found.items()} == expected
        assert worker.differences(math.add) == list(expected.values())
    # The other way round: a client that knows z, against a worker that does not.
    old_worker = WorkerInfo(
        "w@h", ("math",), {"math.add": math.add.fingerprint}, shapes={"math.add": math.add.served_shape()}
    )
    # Compatible, as `task-contracts diff` says (parameter-added-optional): a warning, not a problem.
    assert old_worker.differences(newer) == []
    assert old_worker.risks(newer) == ["parameter 'z' is not known to the worker: calls that pass it are refused"]
    assert contract_problems(ContractCatalog(newer), [old_worker]) == {}
    assert contract_warnings(ContractCatalog(newer), [old_worker]) == {
        "math.add": "served with compatible differences only: w@h: "
        "parameter 'z' is not known to the worker: calls that pass it are refused"
    }
    # A second worker serving the client's exact contract removes the risk.
    new_worker = WorkerInfo("w2@h", ("math",), {"math.add": newer.fingerprint})
    assert contract_warnings(ContractCatalog(newer), [old_worker, new_worker]) == {}


def _add_with_z(x: int, y: int, z: int = 0) -> int: ...


def _add_with_str_y(x: int, y: str) -> int: ...
