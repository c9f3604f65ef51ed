"""`mypy --strict` with the repository's configuration, for the tests that type-check samples.

Checking task_client, task_contracts and Celery's stubs from nothing takes about 4 s a run. So
the first run in a test process checks them once into a cache, and each run starts from a copy
of that cache: the modules under test (the samples, tests/team) are never in it, so they are
checked afresh, and nothing one run caches can answer for another (mypy replays a cached
module's report when a sample of the same name and text reappears elsewhere). The tests that
call this share one test process (`xdist_group("mypy")`), so the cache is made once.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from functools import cache
from pathlib import Path

from mypy import api

REPO_ROOT = Path(__file__).resolve().parent.parent
SEEDED = ("task_client", "task_contracts")  # what the samples import; each brings its dependencies


def mypy_strict(*paths: str | Path) -> tuple[str, int]:
    """mypy's report and exit status for `paths`."""
    with tempfile.TemporaryDirectory(prefix="task-mypy-run-") as run_cache:
        shutil.copytree(_seeded_cache(), run_cache, dirs_exist_ok=True)
        return _run(run_cache, *paths)


@cache
def _seeded_cache() -> Path:
    directory = Path(tempfile.mkdtemp(prefix="task-mypy-seed-"))
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    seed = directory / "task_mypy_seed.py"
    seed.write_text("".join(f"import {module}\n" for module in SEEDED))
    report, status = _run(directory / "cache", seed)
    assert status == 0, f"mypy --strict fails on the packages themselves:\n{report}"
    return directory / "cache"


def _run(cache_dir: str | Path, *paths: str | Path) -> tuple[str, int]:
    config = REPO_ROOT / "pyproject.toml"
    stdout, _stderr, status = api.run(
        ["--strict", "--cache-dir", str(cache_dir), "--config-file", str(config), *map(str, paths)]
    )
    return stdout, status
