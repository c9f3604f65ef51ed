"""The three distributions as teams install them: each side in its own virtualenv, from wheel files.

The worker runs from a virtualenv holding only the contracts and server wheels (and their
dependencies); the client from another holding only the contracts and client wheels.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from task_server.testing import RedisProcess, WorkerProcess

from ..conftest import REPO_ROOT

pytestmark = pytest.mark.e2e

CLIENT_SCRIPT = """
import importlib.util, sys
from task_client import TaskClient
assert importlib.util.find_spec("task_server") is None, "task_server is installed"
with TaskClient(sys.argv[1]) as client:
    print(client.add(4, 7), client.mul(4, 7), client.xsum([1, 2, 3]))
"""

UV = shutil.which("uv", path=str(Path(sys.executable).parent)) or "uv"  # the dev virtualenv's

ONLY = "import importlib.util, sys; print(importlib.util.find_spec(sys.argv[1]) is None)"


def build_wheels(directory: Path) -> dict[str, Path]:
    """One wheel per distribution, built from this checkout; keyed by member directory."""
    members = ("contracts", "server", "client")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", str(directory)]
        + [str(REPO_ROOT / member) for member in members],
        check=True,
        timeout=300,
    )
    wheels = {member: list(directory.glob(f"task_{member}-*.whl")) for member in members}
    assert all(len(found) == 1 for found in wheels.values()) and len(wheels) == 3, wheels
    return {member: found[0] for member, found in wheels.items()}


def virtualenv(directory: Path, *wheels: Path) -> Path:
    """A fresh virtualenv with these wheel files installed (their dependencies from the index); its bin/.

    uv (a dev dependency) creates and fills it: the same standard virtualenv and the same metadata
    resolved, in about 1.5 s where venv with pip and `pip install` take about 16 s.
    """
    subprocess.run([UV, "venv", "--quiet", "--python", sys.executable, str(directory)], check=True, timeout=120)
    # Wheel paths, never a name: a name could resolve to the unrelated public "task-client".
    subprocess.run(
        [UV, "pip", "install", "--quiet", "--python", str(directory / "bin" / "python"), *map(str, wheels)],
        check=True,
        timeout=300,
    )
    return directory / "bin"


def lacks(bin_dir: Path, module: str) -> bool:
    done = subprocess.run([str(bin_dir / "python"), "-c", ONLY, module], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip() == "True"


@pytest.mark.timeout(900)  # three wheels and two virtualenvs with their dependencies
def test_a_worker_and_a_client_each_from_their_own_wheels(tmp_path: Path, private_redis: RedisProcess) -> None:
    wheels = build_wheels(tmp_path / "wheels")
    server_bin = virtualenv(tmp_path / "server-env", wheels["contracts"], wheels["server"])
    client_bin = virtualenv(tmp_path / "client-env", wheels["contracts"], wheels["client"])
    assert lacks(server_bin, "task_client") and not lacks(server_bin, "task_server")
    assert lacks(client_bin, "task_server") and not lacks(client_bin, "task_client")

    # The only worker on this Redis is the installed one, so every answer below comes from it.
    with WorkerProcess(
        private_redis.url, concurrency=1, logdir=str(tmp_path), command=[str(server_bin / "task-server")]
    ) as worker:
        worker.start()
        done = subprocess.run(
            [str(client_bin / "python"), "-c", CLIENT_SCRIPT, private_redis.url],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.split() == ["11", "28", "6"]
        # The console scripts the wheels declare work from the clean environments too.
        called = subprocess.run(
            [str(client_bin / "task-client"), "--broker-url", private_redis.url, "call", "add", "40", "2"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert (called.returncode, called.stdout) == (0, "42\n"), called.stderr
        assert "succeeded in" in worker.log() and ": 42" in worker.log()
    exported = subprocess.run(
        [str(client_bin / "task-contracts"), "export", str(tmp_path / "exported")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert exported.returncode == 0, exported.stderr
    assert (tmp_path / "exported" / "asyncapi.json").is_file()
    # The wheel ships the callers' hand-written runtimes: generating from the installed wheel gives
    # exactly the committed callers of the shipped catalog.
    for language in ("go", "php", "typescript"):
        out = tmp_path / "generated" / language
        generated = subprocess.run(
            [str(client_bin / "task-contracts"), "generate", language, "--out", str(out)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert generated.returncode == 0, generated.stderr
        committed = REPO_ROOT / "examples" / "generated" / language
        assert sorted(path.name for path in out.iterdir()) == sorted(path.name for path in committed.iterdir())
        for path in committed.iterdir():
            assert (out / path.name).read_bytes() == path.read_bytes(), f"{language}/{path.name}"
