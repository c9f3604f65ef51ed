"""What the three languages' caller tests share: real Redis servers and real workers, started once
for the package (all three languages), in one test process when pytest-xdist spreads the suite.

- `main`: a worker serving the shipped contracts plus `callers.describe` (`contracts.SERVED`);
  `callers.unserved` reaches it and is refused, `callers-idle` is consumed by nobody.
- `quiet`: a Redis with no worker at all (calls time out there; an invalid call must leave it empty).
- `evolved`: a worker whose `math.add` gained an optional parameter (`evolved.py`).
- `down`: a port where nothing listens.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from task_server.testing import RedisProcess, WorkerProcess, free_port

from ..conftest import REPO_ROOT

HERE = Path(__file__).parent


@dataclass(frozen=True)
class Servers:
    main: str
    quiet: str
    evolved: str
    down: str

    def env(self) -> dict[str, str]:
        """The environment every language's test program reads its URLs from."""
        return {
            "CALLERS_MAIN_URL": self.main,
            "CALLERS_QUIET_URL": self.quiet,
            "CALLERS_EVOLVED_URL": self.evolved,
            "CALLERS_DOWN_URL": self.down,
        }

    def assert_quiet_untouched_by_invalid_calls(self) -> None:
        """The invalid calls target `callers.describe` (queue `callers`) on the quiet Redis: nothing
        may have been published there, while the timeout test's call did reach its `math` queue."""
        quiet = redis.Redis.from_url(self.quiet)
        try:
            assert quiet.llen("callers") == 0
            assert quiet.llen("math") >= 1, "the timeout test published nothing: the check above proves nothing"
        finally:
            quiet.close()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # One xdist process runs the whole package, so its servers and workers start once.
    if config.pluginmanager.hasplugin("xdist"):
        for item in items:
            if item.path.is_relative_to(HERE):
                item.add_marker(pytest.mark.xdist_group("callers"))


@pytest.fixture(scope="package")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    base = tmp_path_factory.mktemp("callers")
    env = {"PYTHONPATH": str(REPO_ROOT)}
    with (
        RedisProcess(workdir=str(tmp_path_factory.mktemp("main"))) as main,
        RedisProcess(workdir=str(tmp_path_factory.mktemp("quiet"))) as quiet,
        RedisProcess(workdir=str(tmp_path_factory.mktemp("evolved"))) as evolved,
    ):
        for server in (main, quiet, evolved):
            server.start()
        with (
            WorkerProcess(
                main.url,
                concurrency=2,
                logdir=str(base),
                catalog="tests.callers.contracts:SERVED",
                implementations=("task_server.tasks", "tests.callers.tasks"),
                env=env,
            ) as worker,
            WorkerProcess(
                evolved.url,
                concurrency=1,
                logdir=str(base),
                catalog="tests.callers.evolved:CATALOG",
                implementations=("tests.callers.evolved",),
                env=env,
            ) as newer,
        ):
            worker.start()
            newer.start()
            yield Servers(main.url, quiet.url, evolved.url, f"redis://127.0.0.1:{free_port()}/0")


def require_tool(command: str, package: str) -> str:
    """The path of a toolchain command; fails (never skips) naming the package that provides it."""
    found = shutil.which(command)
    if found is None:
        pytest.fail(f"{command} not found: install the Debian package {package} (the callers' tests need it)")
    return found


def shared_cache(name: str) -> Path:
    """A build cache kept between sessions (inside the virtualenv), so compiles after the first are quick."""
    path = Path(os.environ.get("CALLERS_CACHE_DIR", REPO_ROOT / ".venv" / "callers-cache")) / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def docs_example(title: str) -> str:
    """The code block of docs/callers.md whose fence says `title="<title>"`, as a reader copies it."""
    text = (REPO_ROOT / "docs" / "callers.md").read_text()
    start = text.index(f'title="{title}"')
    body = text.index("\n", start) + 1
    return text[body : text.index("\n```", body)] + "\n"
