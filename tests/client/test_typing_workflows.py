"""Static typing of workflows: mypy infers each signature's type, accepts a chain whose results
feed the next link and rejects one whose previous result cannot."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ..strict_mypy import mypy_strict

pytestmark = pytest.mark.xdist_group("mypy")  # one test process, one mypy cache (tests/strict_mypy.py)

SAMPLE = """
from task_client import TaskClient, chord, group

client = TaskClient()
reveal_type(client.add.s(4, 7))
reveal_type(client.mul.s(10))
reveal_type(client.xsum.s())
reveal_type(client.add.s(4, 7) | client.mul.s(10))
reveal_type((client.add.s(4, 7) | client.mul.s(10))())
reveal_type((client.add.s(4, 7) | client.mul.s(10)).submit().result())
reveal_type(group(client.add.s(1, 1), client.add.s(2, 2)))
reveal_type(chord(group(client.add.s(1, 1), client.add.s(2, 2)), client.xsum.s()))
reveal_type(client.add.s(1, 2) | client.div.s(2))
reveal_type(client.aio.add.s(4, 7) | client.aio.mul.s(10))

async def run() -> None:
    reveal_type(await (client.aio.add.s(4, 7) | client.aio.mul.s(10))())

bad_feed = client.add.s(4, 7) | client.xsum.s()
bad_float = client.div.s(1, 2) | client.mul.s(3)
bad_chord = chord(group(client.div.s(1, 2)), client.xsum.s())
bad_argument = client.mul.s("ten")
bad_complete = client.add.s(1, 2) | client.add.s(3, 4)
"""

EXPECTED_REVEALED = [
    "task_client._signatures.Workflow[int]",
    "task_client._signatures.Partial[int, int]",
    "task_client._signatures.Partial[list[int], int]",
    "task_client._signatures.Workflow[int]",
    "int",
    "int",
    "task_client._signatures.Workflow[list[int]]",
    "task_client._signatures.Workflow[int]",
    "task_client._signatures.Workflow[float]",
    "task_client._signatures.AsyncWorkflow[int]",
    "int",
]


def run_mypy(tmp_path: Path, source: str) -> tuple[list[str], str]:
    sample = tmp_path / "sample.py"
    sample.write_text(source)
    stdout, _status = mypy_strict(str(sample))
    lines = [line for line in stdout.splitlines() if line.startswith(str(sample))]
    return lines, stdout


def test_mypy_infers_workflow_types(tmp_path: Path) -> None:
    lines, stdout = run_mypy(tmp_path, SAMPLE)
    revealed = [
        re.sub(r"\bbuiltins\.", "", line.split('Revealed type is "', 1)[1].rstrip('"'))
        for line in lines
        if "Revealed type is" in line
    ]
    assert revealed == EXPECTED_REVEALED, stdout


def test_mypy_rejects_a_chain_whose_result_cannot_feed_the_next_link(tmp_path: Path) -> None:
    lines, stdout = run_mypy(tmp_path, SAMPLE)
    errors = {int(line.split(":")[1]): line for line in lines if ": error:" in line}
    source = SAMPLE.splitlines()

    def error_on(name: str) -> str:
        number = next(index for index, text in enumerate(source, 1) if text.startswith(f"{name} ="))
        assert number in errors, f"mypy accepted {source[number - 1]!r}:\n{stdout}"
        return errors[number]

    assert 'Unsupported operand types for | ("Workflow[int]" and "Partial[list[int], int]")' in error_on("bad_feed")
    assert 'Unsupported operand types for | ("Workflow[float]" and "Partial[int, int]")' in error_on("bad_float")
    assert "chord" in error_on("bad_chord")
    assert '"s" of "RemoteTask"' in error_on("bad_argument")
    assert 'Unsupported operand types for | ("Workflow[int]" and "Workflow[int]")' in error_on("bad_complete")
    assert len(errors) == 5, stdout


GOOD = """
import asyncio
from task_client import TaskClient, chord, group

client = TaskClient()
total: int = (client.add.s(4, 7) | client.mul.s(10) | client.add.s(y=1))()
ratio: float = (client.add.s(1, 2) | client.div.s(2))(timeout=5)
items: list[int] = group(client.add.s(1, 1), client.add.s(4, 7) | client.mul.s(2))()
summed: int = chord(group(client.add.s(1, 1), client.add.s(2, 2)), client.xsum.s()).submit().result(timeout=5)
async_total: int = asyncio.run((client.aio.add.s(4, 7) | client.aio.mul.s(10))())
"""


def test_good_workflows_pass_mypy_cleanly(tmp_path: Path) -> None:
    lines, stdout = run_mypy(tmp_path, GOOD)
    assert lines == [], stdout


PYRIGHT_SAMPLE = """
from task_client import TaskClient

client = TaskClient()
reveal_type(client.add.s(4, 7) | client.mul.s(10))
_ = client.add.s(4, 7) | client.xsum.s()
"""


def test_pyright_sees_the_same_workflow_types(tmp_path: Path) -> None:
    executable = shutil.which("basedpyright", path=str(Path(sys.executable).parent))
    assert executable, "basedpyright is part of the dev dependency group"
    sample = tmp_path / "sample.py"
    sample.write_text(PYRIGHT_SAMPLE)
    done = subprocess.run(
        [executable, "--pythonpath", sys.executable, str(sample)],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=tmp_path,
    )
    assert 'Type of "client.add.s(4, 7) | client.mul.s(10)" is "Workflow[int]"' in done.stdout, done.stdout
    assert 'Operator "|" not supported for types "Workflow[int]" and "Partial[list[int], int]"' in done.stdout
    assert "1 error" in done.stdout, done.stdout
