"""The client never needs server code: not at import, not in its published metadata."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

from task_client import AsyncTaskClient, TaskClient
from task_contracts import CATALOG

from ..conftest import REPO_ROOT


def test_importing_task_client_never_imports_task_server() -> None:
    code = (
        "import sys, task_client\n"
        "client = task_client.TaskClient('redis://127.0.0.1:9/0')\n"
        "client.add; client.close()\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] == 'task_server')\n"
        "print(loaded)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_client_wheel_metadata_does_not_require_task_server(tmp_path: Path) -> None:
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
            str(tmp_path),
            str(REPO_ROOT / "client"),
        ],
        check=True,
        timeout=120,
    )
    (wheel,) = tmp_path.glob("task_client-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        metadata_name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        metadata = Parser().parsestr(archive.read(metadata_name).decode())
        assert "task_client/py.typed" in archive.namelist()
    requires = metadata.get_all("Requires-Dist") or []
    assert metadata["Name"] == "task-client"
    assert any(r.startswith("task-contracts") for r in requires)
    assert any(r.startswith("celery") for r in requires)
    assert not any(r.startswith(("task-server", "task_server")) for r in requires)


@pytest.mark.parametrize("client_class", [TaskClient, AsyncTaskClient], ids=lambda cls: cls.__name__)
def test_every_catalog_contract_is_a_client_attribute(client_class: type) -> None:
    for item in CATALOG:
        attribute = item.name.split(".")[-1]
        bound = getattr(client_class, attribute, None)
        assert bound is not None, f"{client_class.__name__}.{attribute} is missing for {item.name}"
        assert bound.contract is item, f"{client_class.__name__}.{attribute} does not expose {item.name}"
