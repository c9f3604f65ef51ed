"""The "Adding a task" walkthrough of docs/server.md, run for real.

The diff in that section is applied to a copy of the three distributions; it touches at most the
contract stub, its implementation and one typed client attribute, `task-server check` accepts the
result, and a worker running the copy answers `client.sub(7, 3)` with 4.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from task_server.testing import RedisProcess, WorkerProcess

from .conftest import REPO_ROOT

pytestmark = pytest.mark.e2e

MEMBERS = ("contracts", "server", "client")
EXPECTED_FILES = [
    "client/src/task_client/_tasks.py",
    "contracts/src/task_contracts/math.py",
    "server/src/task_server/tasks/math.py",
]


def walkthrough_diff() -> str:
    text = (REPO_ROOT / "docs" / "server.md").read_text()
    section = text.split("## Adding a task", 1)[1].split("\n## ", 1)[0]
    found = re.search(r"```diff\n(.*?)```", section, re.DOTALL)
    assert found, "docs/server.md: the Adding a task section has no diff"
    return found.group(1)


def test_the_walkthrough_touches_only_the_stub_the_implementation_and_one_client_line() -> None:
    diff = walkthrough_diff()
    assert re.findall(r"^diff --git a/(\S+) ", diff, re.MULTILINE) == EXPECTED_FILES
    client_part = diff.split("diff --git a/contracts/", 1)[0]
    assert [line for line in client_part.splitlines() if line.startswith("+") and not line.startswith("+++")] == [
        "+    sub = remote(math.sub)"
    ]


def test_the_walkthrough_diff_gives_a_task_a_real_worker_serves(tmp_path: Path, private_redis: RedisProcess) -> None:
    copy = tmp_path / "repo"
    for member in MEMBERS:
        shutil.copytree(REPO_ROOT / member, copy / member, ignore=shutil.ignore_patterns("__pycache__"))
    patch = tmp_path / "walkthrough.diff"
    patch.write_text(walkthrough_diff())
    applied = subprocess.run(["git", "apply", str(patch)], cwd=copy, capture_output=True, text=True, check=False)
    assert applied.returncode == 0, f"the documented diff no longer applies: {applied.stderr}"
    # The copy's sources come first on the path, before this checkout's editable installs.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(str(copy / member / "src") for member in MEMBERS)}
    checked = subprocess.run(
        [sys.executable, "-m", "task_server", "check"], capture_output=True, text=True, env=env, timeout=60
    )
    assert checked.returncode == 0, checked.stderr
    assert "ok  math.sub(x: int, y: int) -> int  queue=math" in checked.stdout
    with WorkerProcess(private_redis.url, concurrency=1, logdir=str(tmp_path), env=env) as worker:
        worker.start()
        called = subprocess.run(
            [
                sys.executable,
                "-c",
                "import sys\nfrom task_client import TaskClient\n"
                "with TaskClient(sys.argv[1]) as client: print(client.sub(7, 3))",
                private_redis.url,
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
    assert (called.returncode, called.stdout) == (0, "4\n"), called.stderr
    # `make generate` in the copy: the new contract is in all three generated callers, no hand edit.
    for language, name in (
        ("go", "func (c *Client) MathSub("),
        ("php", "function mathSub("),
        ("typescript", "mathSub("),
    ):
        out = tmp_path / "generated" / language
        generated = subprocess.run(
            [sys.executable, "-m", "task_contracts._cli", "generate", language, "--out", str(out)],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
        assert generated.returncode == 0, generated.stderr
        assert name in "".join(path.read_text() for path in out.iterdir() if path.is_file()), language
        assert "Return x - y." in "".join(path.read_text() for path in out.iterdir() if path.is_file()), language
