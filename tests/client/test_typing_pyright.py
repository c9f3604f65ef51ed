"""pyright (as basedpyright, which bundles its Node.js) sees the same types as mypy."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

SAMPLE = """
from task_client import AsyncCatalogClient, AsyncTaskClient, CatalogClient, TaskClient, remote
from task_contracts import math

class MyCo:
    charge = remote(math.add)

class AsyncMyCo(MyCo, AsyncCatalogClient): ...
class SyncMyCo(MyCo, CatalogClient[AsyncMyCo]): ...

class MyClient(TaskClient):
    plus = remote(math.add)

class MyAsyncClient(AsyncTaskClient):
    plus = remote(math.add)

client = TaskClient()
reveal_type(client.add(4, 7))
reveal_type(client.add.submit(4, 7))
reveal_type(MyClient().plus(4, 7))
_ = client.add("a", 7)

async def main() -> None:
    aclient = AsyncTaskClient()
    reveal_type(await aclient.add(4, 7))
    reveal_type(await client.aio.add(4, 7))
    reveal_type(await MyAsyncClient().plus(4, 7))
    _ = await aclient.add(4, "b")
    reveal_type(await SyncMyCo().aio.charge(4, 7))
    _ = SyncMyCo().add
"""


def test_pyright_sees_typed_results_and_flags_wrong_arguments(tmp_path: Path) -> None:
    executable = shutil.which("basedpyright", path=str(Path(sys.executable).parent))
    assert executable, "basedpyright is part of the dev dependency group"
    sample = tmp_path / "sample.py"
    sample.write_text(SAMPLE)
    done = subprocess.run(
        [executable, "--pythonpath", sys.executable, str(sample)],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=tmp_path,
    )
    assert 'Type of "client.add(4, 7)" is "int"' in done.stdout, done.stdout
    assert 'Type of "client.add.submit(4, 7)" is "TaskHandle[int]"' in done.stdout, done.stdout
    assert 'Type of "MyClient().plus(4, 7)" is "int"' in done.stdout, done.stdout
    assert 'Type of "await aclient.add(4, 7)" is "int"' in done.stdout, done.stdout
    assert 'Type of "await client.aio.add(4, 7)" is "int"' in done.stdout, done.stdout
    assert 'Type of "await MyAsyncClient().plus(4, 7)" is "int"' in done.stdout, done.stdout
    assert 'Argument of type "Literal[\'a\']" cannot be assigned to parameter "x" of type "int"' in done.stdout
    assert 'Argument of type "Literal[\'b\']" cannot be assigned to parameter "y" of type "int"' in done.stdout
    assert 'Type of "await SyncMyCo().aio.charge(4, 7)" is "int"' in done.stdout, done.stdout
    assert 'Cannot access attribute "add" for class "SyncMyCo"' in done.stdout, done.stdout
    assert done.returncode == 1  # exactly the flagged calls make it fail
    assert "3 errors" in done.stdout, done.stdout
