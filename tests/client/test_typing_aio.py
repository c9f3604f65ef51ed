"""mypy sees the async facade and batches with the contract's types."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ..strict_mypy import mypy_strict

pytestmark = pytest.mark.xdist_group("mypy")  # one test process, one mypy cache (tests/strict_mypy.py)

SAMPLE = """
from task_client import AsyncCatalogClient, AsyncTaskClient, CatalogClient, TaskClient, remote
from task_contracts import math

class MyAsyncClient(AsyncTaskClient):
    plus = remote(math.add)

class MyCo:  # a team's catalog, both faces, as docs/client.md shows
    charge = remote(math.add)

class AsyncMyCo(MyCo, AsyncCatalogClient): ...
class SyncMyCo(MyCo, CatalogClient[AsyncMyCo]): ...

client = TaskClient()

async def main() -> None:
    async with AsyncTaskClient() as aclient:
        reveal_type(await aclient.add(4, 7))
        reveal_type(await (await aclient.add.submit(4, 7)).status())
        reveal_type(await MyAsyncClient().plus(4, 7))
        await aclient.add(4, "b")
    reveal_type(await client.aio.add(4, 7))
    reveal_type(await client.aio.add.submit(4, 7))
    reveal_type(await (await client.aio.add.submit(4, 7)))
    reveal_type(await (await client.aio.add.submit(4, 7)).result(timeout=1))
    reveal_type(await client.aio.add.map([(1, 2)]))
    reveal_type(client.add.map([(1, 2)]))
    reveal_type(client.add.map([(1, 2)], return_exceptions=True))
    reveal_type(client.add.submit_many([(1, 2)]))
    await client.aio.add("a", 7)
    team = SyncMyCo()
    reveal_type(team.charge(4, 7))
    reveal_type(await team.aio.charge(4, 7))
    team.add(1, 2)
    team.aio.mul(1, 2)
"""


def test_mypy_sees_async_and_batch_types(tmp_path: Path) -> None:
    sample = tmp_path / "sample_aio.py"
    sample.write_text(SAMPLE)
    stdout, _status = mypy_strict(str(sample))
    lines = [line.split(": ", 1)[1] for line in stdout.splitlines() if line.startswith(str(sample))]
    revealed = [re.sub(r"\bbuiltins\.", "", line) for line in lines if "Revealed type" in line]
    assert revealed == [
        'note: Revealed type is "int"',
        'note: Revealed type is "str"',
        'note: Revealed type is "int"',
        'note: Revealed type is "int"',
        'note: Revealed type is "task_client._handle.AsyncTaskHandle[int]"',
        'note: Revealed type is "int"',
        'note: Revealed type is "int"',
        'note: Revealed type is "list[int]"',
        'note: Revealed type is "list[int]"',
        'note: Revealed type is "list[int | task_client._errors.TaskError]"',
        'note: Revealed type is "list[task_client._handle.TaskHandle[int]]"',
        'note: Revealed type is "int"',
        'note: Revealed type is "int"',
    ], stdout
    errors = "\n".join(line for line in lines if line.startswith("error"))
    assert 'Argument 1 to "__call__" of "AsyncRemoteTask" has incompatible type "str"; expected "int"' in errors, stdout
    assert 'Argument 2 to "__call__" of "AsyncRemoteTask" has incompatible type "str"; expected "int"' in errors, stdout
    assert '"SyncMyCo" has no attribute "add"' in errors, stdout  # no demo contracts on a team's client
    assert '"AsyncMyCo" has no attribute "mul"' in errors, stdout
    assert len(errors.splitlines()) == 4, stdout
