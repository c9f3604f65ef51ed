"""A rolling deploy, end to end: two versions of the repository, each built into wheels and
installed in its own virtualenv; a worker of each version; clients of both versions calling all
along while the old worker is drained, the new one takes over, both serve side by side, and the
old one stops.

Version 2 is this checkout with `rolling/v2.patch` applied: `math.add` gains an optional parameter
(`z: int = 0`) and the `Stats` result of `math.stats` a field (`mean: float | None = None`). Both
are compatible changes (`task-contracts diff` says so, from the two wheels), so the deploy must cost
zero failed calls, and what the old client queued before the switch must run on the new worker.

The virtualenvs hold only their own version's three wheels; the third-party dependencies (Celery,
pydantic, redis-py) come from this environment through a `.pth` file, which keeps the test offline
and well under a minute. `test_installed_wheels.py` proves the wheels' own dependency metadata.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from celery import Celery

from task_client import TaskClient
from task_server.testing import RedisProcess, WorkerProcess, wait_until

from ..conftest import REPO_ROOT

pytestmark = pytest.mark.e2e

HERE = Path(__file__).parent / "rolling"
MEMBERS = ("contracts", "server", "client")
QUEUED = 20  # calls the old client publishes while no worker consumes `math`


@dataclass(frozen=True)
class Version:
    """One deployed version: its virtualenv's Python and its wheel files."""

    name: str
    python: Path
    wheels: dict[str, Path]

    def run(self, code: str, *args: str) -> str:
        done = subprocess.run(
            [str(self.python), "-c", code, *args], capture_output=True, text=True, timeout=60, check=False
        )
        assert done.returncode == 0, f"{self.name}: {done.stderr[-2000:]}"
        return done.stdout

    def worker(self, url: str, logdir: Path) -> WorkerProcess:
        return WorkerProcess(url, concurrency=2, logdir=str(logdir), command=[str(self.python), "-m", "task_server"])


def source_tree(target: Path, patch: Path | None, version: str) -> Path:
    """A copy of the three distributions, with `patch` applied and every version set to `version`."""
    for member in MEMBERS:
        shutil.copytree(REPO_ROOT / member, target / member, ignore=shutil.ignore_patterns("__pycache__"))
        pyproject = target / member / "pyproject.toml"
        text = pyproject.read_text()
        assert 'version = "0.2.0"' in text, f"{pyproject}: update the version this test replaces"
        pyproject.write_text(text.replace('version = "0.2.0"', f'version = "{version}"', 1))
    if patch is not None:
        subprocess.run(["git", "apply", "--verbose", str(patch)], cwd=target, check=True, capture_output=True)
    return target


def install(name: str, tree: Path, scratch: Path) -> Version:
    wheels_dir, env = scratch / f"{name}-wheels", scratch / f"{name}-env"
    subprocess.run(
        [
            *(sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "--no-index"),
            *("-w", str(wheels_dir), *(str(tree / member) for member in MEMBERS)),
        ],
        check=True,
        timeout=120,
    )
    wheels = {member: next(wheels_dir.glob(f"task_{member}-*.whl")) for member in MEMBERS}
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True, timeout=60)
    python = env / "bin" / "python"
    site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    (site / "shared_dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    subprocess.run(
        [
            *(sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", "--target", str(site)),
            *(str(wheel) for wheel in wheels.values()),
        ],
        check=True,
        timeout=120,
    )
    return Version(name, python, wheels)


@pytest.fixture(scope="session")
def versions(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Version]:
    """Version 1 (this checkout) and version 2 (with the patch), each built and installed once per session."""
    scratch = tmp_path_factory.mktemp("rolling")
    built = {
        "v1": install("v1", source_tree(scratch / "v1-src", None, "0.2.1"), scratch),
        "v2": install("v2", source_tree(scratch / "v2-src", HERE / "v2.patch", "0.3.0"), scratch),
    }
    where = "import task_contracts, task_server, task_client as c, importlib.metadata as m; "
    where += "print(c.__file__, m.version('task-client'))"
    for version in built.values():
        location, installed = version.run(where).split()
        assert location.startswith(str(version.python.parent.parent)), location  # its own copy, not ours
        assert installed == {"v1": "0.2.1", "v2": "0.3.0"}[version.name]
    return built


class ClientLoop:
    """A client of one version calling continuously, in its own process."""

    def __init__(self, version: Version, url: str, directory: Path) -> None:
        self.version = version
        self.stop_file = directory / f"{version.name}.stop"
        self.report_file = directory / f"{version.name}.json"
        self.process = subprocess.Popen(
            [str(version.python), str(HERE / "client_loop.py"), url, str(self.stop_file), str(self.report_file)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )

    def report(self) -> dict[str, Any]:
        if not self.report_file.exists():
            return {"ok": 0, "failures": [], "ids": [], "mean_none": 0, "mean_set": 0}
        result: dict[str, Any] = json.loads(self.report_file.read_text())
        return result

    def wait_for(self, calls: int, what: str) -> None:
        def done() -> bool:
            assert self.process.poll() is None, self.process.communicate()[0].decode()[-3000:]
            return int(self.report()["ok"]) >= calls

        wait_until(done, 60, f"the {self.version.name} client to make {calls} calls {what}", interval=0.05)

    def finish(self) -> dict[str, Any]:
        self.stop_file.touch()
        try:
            output, _ = self.process.communicate(timeout=70)
        except subprocess.TimeoutExpired:
            self.process.kill()
            output, _ = self.process.communicate()
        assert self.process.returncode == 0, output.decode()[-3000:]
        return self.report()


@pytest.fixture
def loops(private_redis: RedisProcess, tmp_path: Path, versions: dict[str, Version]) -> Iterator[list[ClientLoop]]:
    started: list[ClientLoop] = []
    yield started
    for loop in started:
        if loop.process.poll() is None:
            loop.stop_file.touch()
            loop.process.kill()
            loop.process.wait(timeout=10)


SUBMIT = """
import json, sys
from task_client import TaskClient
with TaskClient(sys.argv[1]) as client:
    print(json.dumps([client.add.submit(i, 1000).id for i in range(int(sys.argv[2]))]))
"""


@pytest.mark.timeout(240)  # wheels and virtualenvs are built once per session; the deploy itself takes ~30 s
def test_a_rolling_deploy_loses_no_call(
    versions: dict[str, Version], private_redis: RedisProcess, tmp_path: Path, loops: list[ClientLoop]
) -> None:
    old, new = versions["v1"], versions["v2"]
    url = private_redis.url
    old_worker, new_worker = old.worker(url, tmp_path), new.worker(url, tmp_path)
    with old_worker, new_worker:
        old_worker.start()
        loops += [ClientLoop(old, url, tmp_path), ClientLoop(new, url, tmp_path)]
        for loop in loops:
            loop.wait_for(10, "against the old worker")  # the new client too: it uses only what v1 knows

        # The deploy. The old worker is drained (stops consuming `math`, finishing what it holds),
        # so the old client's calls queue up with no worker to take them; the new worker starts and
        # takes them; both versions then serve side by side; finally the old worker stops.
        consumers(url, "cancel_consumer", old_worker.hostname)
        queued: list[str] = json.loads(old.run(SUBMIT, url, str(QUEUED)))
        new_worker.start()
        progress = {loop.version.name: int(loop.report()["ok"]) for loop in loops}
        for loop in loops:
            loop.wait_for(progress[loop.version.name] + 10, "against the new worker")

        consumers(url, "add_consumer", old_worker.hostname)
        overlap_start = {loop.version.name: int(loop.report()["ok"]) for loop in loops}
        for loop in loops:
            loop.wait_for(overlap_start[loop.version.name] + 20, "while both versions serve")

        def old_worker_serves_again() -> bool:  # its next poll of `math` may come a moment later
            since = [
                task_id for loop in loops for task_id in loop.report()["ids"][2 * overlap_start[loop.version.name] :]
            ]
            return any(task_id in old_worker.log() for task_id in since)

        wait_until(old_worker_serves_again, 30, "the old worker to take calls beside the new one", interval=0.1)
        overlap_end = {loop.version.name: int(loop.report()["ok"]) for loop in loops}

        old_worker.stop()
        for loop in loops:
            loop.wait_for(overlap_end[loop.version.name] + 10, "after the old worker is gone")
        reports = {loop.version.name: loop.finish() for loop in loops}

        with TaskClient(url) as client:  # this checkout is version 1: the old client's view
            assert [client.add.handle(task_id).result(timeout=30) for task_id in queued] == [
                i + 1000 for i in range(QUEUED)
            ]
        # The new client can now use the new parameter.
        assert (
            new.run(
                "import sys; from task_client import TaskClient\n"
                "with TaskClient(sys.argv[1]) as c: print(c.add(1, 2, z=3))",
                url,
            ).strip()
            == "6"
        )

    for name, report in reports.items():
        assert report["failures"] == [], f"{name} client: {report['failures'][:5]}"
        assert report["ok"] >= 20
    assert all(task_id in new_worker.log() for task_id in queued), "a queued call did not run on the new worker"
    # Each client was served by both workers: the new client by the old worker (results without
    # `mean`) and by the new one (with it); the old client's calls after the switch by the new worker.
    assert reports["v2"]["mean_none"] > 0 and reports["v2"]["mean_set"] > 0
    assert any(task_id in old_worker.log() for task_id in reports["v2"]["ids"])
    assert any(task_id in new_worker.log() for task_id in reports["v1"]["ids"])
    # While both versions served, both took calls (two ids per successful call pair).
    during = [
        task_id
        for name, report in reports.items()
        for task_id in report["ids"][2 * overlap_start[name] : 2 * overlap_end[name]]
    ]
    assert any(task_id in old_worker.log() for task_id in during), "the old worker served nothing in the overlap"
    assert any(task_id in new_worker.log() for task_id in during), "the new worker served nothing in the overlap"


def consumers(url: str, command: str, hostname: str) -> None:
    """Make one worker stop (`cancel_consumer`) or resume (`add_consumer`) consuming `math`, as a
    deploy tool drains a worker, through Celery's standard remote control."""
    app = Celery(broker=url, set_as_current=False)
    try:
        replies = getattr(app.control, command)("math", destination=[hostname], reply=True, timeout=10)
    finally:
        app.close()
    assert replies and "ok" in replies[0][hostname], f"{command} on {hostname}: {replies!r}"


def test_task_contracts_diff_of_the_two_wheels_finds_only_compatible_changes(versions: dict[str, Version]) -> None:
    done = subprocess.run(
        [
            *(sys.executable, "-m", "task_contracts._cli", "diff", "--json"),
            *(str(versions["v1"].wheels["contracts"]), str(versions["v2"].wheels["contracts"])),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["compatible"] is True
    assert {(change["contract"], change["rule"]) for change in report["changes"]} == {
        ("math.add", "parameter-added-optional"),
        ("math.add", "description-changed"),
        ("math.stats", "result-field-added-optional"),
    }


def test_the_patch_touches_only_the_contract_and_its_implementation() -> None:
    touched = [
        line.split(" b/")[-1] for line in (HERE / "v2.patch").read_text().splitlines() if line.startswith("diff --git")
    ]
    assert touched == ["contracts/src/task_contracts/math.py", "server/src/task_server/tasks/math.py"]
