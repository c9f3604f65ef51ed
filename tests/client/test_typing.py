"""Static typing crosses the boundary: mypy sees results as declared and flags wrong arguments."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ..strict_mypy import mypy_strict

pytestmark = pytest.mark.xdist_group("mypy")  # one test process, one mypy cache (tests/strict_mypy.py)

SAMPLE = """
from task_client import TaskClient, TaskHandle, remote
from task_contracts import math

class MyClient(TaskClient):
    plus = remote(math.add)

client = TaskClient()
reveal_type(client.add(4, 7))
reveal_type(client.xsum([1, 2, 3]))
reveal_type(client.add.submit(4, 7))
reveal_type(client.add.submit(4, 7).result(timeout=1))
reveal_type(MyClient().plus(4, 7))
client.add("a", 7)
client.xsum(1)
client.mul(4)
MyClient().plus(4, "b")
"""


def test_mypy_sees_typed_results_and_flags_wrong_arguments(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(SAMPLE)
    stdout, _status = mypy_strict(str(sample))
    lines = [line.split(": ", 1)[1] for line in stdout.splitlines() if line.startswith(str(sample))]
    revealed = [re.sub(r"\bbuiltins\.", "", line) for line in lines if "Revealed type" in line]
    assert revealed == [
        'note: Revealed type is "int"',
        'note: Revealed type is "int"',
        'note: Revealed type is "task_client._handle.TaskHandle[int]"',
        'note: Revealed type is "int"',
        'note: Revealed type is "int"',
    ], stdout
    errors = "\n".join(line for line in lines if line.startswith("error"))
    assert 'Argument 1 to "__call__" of "RemoteTask" has incompatible type "str"; expected "int"' in errors, stdout
    assert 'incompatible type "int"; expected "list[int]"' in errors, stdout
    assert 'Missing positional argument "y"' in errors, stdout
    assert 'Argument 2 to "__call__" of "RemoteTask" has incompatible type "str"; expected "int"' in errors, stdout
    assert len(errors.splitlines()) == 4, stdout  # exactly the four wrong calls
