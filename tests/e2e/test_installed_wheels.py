"""The client as a client team installs it: its own virtualenv, two wheels, no server code."""

from __future__ import annotations

import subprocess
import sys
import venv
from pathlib import Path

import pytest

from task_server.testing import WorkerProcess

from ..conftest import REPO_ROOT

pytestmark = pytest.mark.e2e

CLIENT_SCRIPT = """
import importlib.util, sys
from task_client import TaskClient
assert importlib.util.find_spec("task_server") is None, "task_server is installed"
with TaskClient(sys.argv[1]) as client:
    print(client.add(4, 7), client.mul(4, 7), client.xsum([1, 2, 3]))
"""


def test_client_from_its_own_wheels_calls_a_worker_in_another_virtualenv(
    tmp_path: Path, redis_url: str, worker: WorkerProcess
) -> None:
    wheels = tmp_path / "wheels"
    for member in ("contracts", "client"):
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "wheel",
                "--quiet",
                "--no-deps",
                "--no-build-isolation",
                "-w",
                str(wheels),
                str(REPO_ROOT / member),
            ],
            check=True,
            timeout=120,
        )
    env_dir = tmp_path / "client-env"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    # Wheel paths, never a name: a name could resolve to the unrelated public "task-client".
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", *map(str, sorted(wheels.glob("*.whl")))],
        check=True,
        timeout=300,
    )
    done = subprocess.run([str(python), "-c", CLIENT_SCRIPT, redis_url], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["11", "28", "6"]
    assert not Path(worker.argv[0]).is_relative_to(env_dir)
    # The console scripts the wheels declare work from the clean environment too.
    called = subprocess.run(
        [str(env_dir / "bin" / "task-client"), "--broker-url", redis_url, "call", "add", "4", "7"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (called.returncode, called.stdout) == (0, "11\n"), called.stderr
    exported = subprocess.run(
        [str(env_dir / "bin" / "task-contracts"), "export", str(tmp_path / "exported")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert exported.returncode == 0, exported.stderr
    assert (tmp_path / "exported" / "asyncapi.json").is_file()
