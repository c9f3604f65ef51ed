"""Parallel runs (`make test`: pytest-xdist, `-n N --dist loadgroup`): what the test processes share.

Each test process has its own session fixtures (redis-server, workers), so no queue or key is
shared between processes. Two things are shared on purpose, through a directory the controller
makes for the run (`RUN_DIR`):

- **Groups.** Tests that share a fixture wider than one test (module, class or package scope, or a
  session fixture declared below tests/conftest.py) run in one process, so that fixture starts
  once. Each test process writes its tests' groups to the directory; the controller's scheduler
  reads them, and sends the groups that took longest in the last run first (pytest's cache).
  (pytest-xdist's own `xdist_group` mechanism renames node ids, which pytest 9.2 no
  longer allows: pytest-xdist issue 1386. `xdist_group` marks are honoured here too.)
- **One RabbitMQ node**, launched by the controller once a test process has collected a RabbitMQ
  test, without waiting for it; each test process attaches to it and uses virtual hosts of its own.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from task_server.testing import ProcessError, RabbitMQProcess

RUN_DIR = "TASK_TEST_RUN_DIR"  # set by the controller before the test processes start; they inherit it
TESTS_DIR = "tests"  # node id of the directory whose session fixtures belong to each test process


def is_controller(config: pytest.Config) -> bool:
    return bool(config.getoption("numprocesses", None)) and not hasattr(config, "workerinput")


def run_dir() -> Path | None:
    value = os.environ.get(RUN_DIR)
    return Path(value) if value else None


# Controller side.


def make_run_dir(config: pytest.Config) -> None:
    if is_controller(config) and not config.getoption("collectonly"):
        os.environ[RUN_DIR] = tempfile.mkdtemp(prefix="task-test-run-")


_launched: list[RabbitMQProcess] = []


def launch_rabbitmq_if_needed(nodeids: list[str]) -> None:
    directory = run_dir()
    if directory is None or _launched or not any("rabbitmq" in nodeid for nodeid in nodeids):
        return
    (directory / "rabbitmq").mkdir()
    # Launched from the controller's main thread, so it dies with the run. Without rabbitmq-server
    # the test processes fail, each naming the package, as in a serial run.
    with contextlib.suppress(ProcessError):
        _launched.append(RabbitMQProcess(workdir=str(directory / "rabbitmq")).launch())


def clean_up(config: pytest.Config) -> None:
    if not is_controller(config):
        return
    for node in _launched:
        node.stop()
    directory = os.environ.pop(RUN_DIR, None)
    if directory:
        shutil.rmtree(directory, ignore_errors=True)


def make_scheduler(config: pytest.Config, log: Any) -> Any:
    from xdist.scheduler import LoadScopeScheduling

    class SharedFixtureScheduling(LoadScopeScheduling):  # type: ignore[misc]
        """Load scheduling, except that the tests of one group go to one process as a unit, and
        the units that took longest last time go first (so that no long one starts last), all
        those on the Redis broker before any on RabbitMQ (`on_rabbitmq`) but for units longer
        than `LONG_UNIT`, which go first whatever their broker."""

        groups: dict[str, str] | None = None
        ordered = False

        def _split_scope(self, nodeid: str) -> str:
            if self.groups is None:  # every test process has collected by the time tests are scheduled
                self.groups = read_groups()
            return self.groups.get(nodeid, nodeid)

        def _assign_work_unit(self, node: Any) -> None:
            if not self.ordered:  # the first call: the work queue is complete, nothing is assigned yet
                self.ordered = True
                last = previous_durations(config)

                def order(unit: tuple[str, Any]) -> tuple[bool, float]:
                    took = sum(last.get(nodeid, 1.0) for nodeid in unit[1])
                    return on_rabbitmq(unit[1]) and took < LONG_UNIT, -took

                units = sorted(self.workqueue.items(), key=order)
                self.workqueue.clear()
                self.workqueue.update(units)
            super()._assign_work_unit(node)

    return SharedFixtureScheduling(config, log)


#: Seconds (last run) past which a unit with RabbitMQ tests goes first rather than with the RabbitMQ
#: units: sent as the Redis units ran out, `broker_faults` (~60 s) ended a run of 6 processes alone,
#: 15-20 s after the others; one more broker switch costs 3-6 s.
LONG_UNIT = 30.0


def on_rabbitmq(nodeids: Iterable[str]) -> bool:
    """Whether a unit has a test with the `rabbitmq` parameter (the `broker` fixture's, mostly).

    `broker` and the session `worker` are session fixtures with a parameter: a test process that
    runs a Redis test after a RabbitMQ one (or the reverse) stops the session worker and starts
    another, and adds the RabbitMQ virtual host again (3-6 s each time on a quiet machine). Sent
    in longest-first order alone, a full run of 4 processes switched to RabbitMQ about 50 times; with the RabbitMQ
    units last, at most once or twice. They then also start once the RabbitMQ node is up.
    """
    return any("rabbitmq" in nodeid.rpartition("[")[2].rstrip("]").split("-") for nodeid in nodeids if "[" in nodeid)


DURATIONS_KEY = "task-sdk/durations"  # in pytest's cache (.pytest_cache): seconds per test, last run
# The same figures from one full run, committed: a fresh clone (CI) has no cache, and without them
# every test counts alike and a long one can start last. Refresh after a full run: `python -m tests.parallel`.
COMMITTED_DURATIONS = Path(__file__).with_name("durations.json")
_durations: dict[str, float] = {}


def previous_durations(config: pytest.Config) -> dict[str, float]:
    """Seconds per test: this clone's last run where it has one, else the committed figures."""
    return {**committed_durations(), **cached_durations(config)}


def committed_durations() -> dict[str, float]:
    found = json.loads(COMMITTED_DURATIONS.read_text()) if COMMITTED_DURATIONS.exists() else {}
    return found if isinstance(found, dict) else {}


def cached_durations(config: pytest.Config) -> dict[str, float]:
    cache = getattr(config, "cache", None)
    found = cache.get(DURATIONS_KEY, {}) if cache is not None else {}
    return found if isinstance(found, dict) else {}


def record_duration(report: pytest.TestReport) -> None:
    if "PYTEST_XDIST_WORKER" not in os.environ:  # the controller (or a serial run) sees every report
        _durations[report.nodeid] = _durations.get(report.nodeid, 0.0) + report.duration


def save_durations(config: pytest.Config) -> None:
    cache = getattr(config, "cache", None)
    if cache is not None and _durations and "PYTEST_XDIST_WORKER" not in os.environ:
        cache.set(DURATIONS_KEY, {**cached_durations(config), **_durations})


def read_groups() -> dict[str, str]:
    directory = run_dir()
    groups: dict[str, str] = {}
    for path in sorted(directory.glob("groups-*.json")) if directory else ():
        groups.update(json.loads(path.read_text()))
    return groups


# Test process side.


def write_groups(config: pytest.Config, items: list[pytest.Item]) -> None:
    directory = run_dir()
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if directory is None or worker is None or not getattr(config.option, "loadgroup", False):
        return
    groups = {item.nodeid: group for item in items if (group := group_of(item)) is not None}
    partial = directory / f"groups-{worker}.json.partial"
    partial.write_text(json.dumps(groups))
    partial.rename(directory / f"groups-{worker}.json")


def group_of(item: pytest.Item) -> str | None:
    """The group an `xdist_group` mark names, or else the widest node (package or module) whose
    tests share a fixture with `item`; None for a test that can run anywhere."""
    marks = sorted(
        str(mark.args[0] if mark.args else mark.kwargs.get("name", "default"))
        for mark in item.iter_markers("xdist_group")
    )
    if marks:
        return "_".join(marks)
    fixtureinfo = getattr(item, "_fixtureinfo", None)
    if fixtureinfo is None:
        return None
    module = item.nodeid.split("::")[0]
    scopes: list[str] = []
    for definitions in fixtureinfo.name2fixturedefs.values():
        for definition in definitions:
            if definition.scope in ("module", "class"):
                scopes.append(module)
            elif definition.scope in ("package", "session") and definition.baseid not in ("", TESTS_DIR):
                scopes.append(definition.baseid)
    return min(scopes, key=len, default=None)


def shared_rabbitmq() -> RabbitMQProcess | None:
    """The run's RabbitMQ node, once it answers; None outside a parallel run (or if none was launched),
    or if it never answers: then the test process starts a node of its own, as in a serial run."""
    directory = run_dir()
    if directory is None or not (directory / "rabbitmq" / "node.json").exists():
        return None
    try:
        return RabbitMQProcess.attach(str(directory / "rabbitmq")).wait_started()
    except ProcessError as failure:
        warnings.warn(f"the run's RabbitMQ node did not start; this process starts its own: {failure}", stacklevel=2)
        return None


def commit_durations(cache_file: Path = Path(".pytest_cache/v") / DURATIONS_KEY) -> None:
    """Write the last full run's figures (pytest's cache) to COMMITTED_DURATIONS, rounded."""
    found = json.loads(cache_file.read_text())
    rounded = {nodeid: round(seconds, 1) for nodeid, seconds in sorted(found.items())}
    COMMITTED_DURATIONS.write_text(json.dumps(rounded, indent=0) + "\n")


if __name__ == "__main__":
    commit_durations()
