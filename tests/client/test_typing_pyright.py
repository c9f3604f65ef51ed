"""pyright (as basedpyright, which bundles its Node.js) sees the same types as mypy."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

SAMPLE = """
from task_client import TaskClient

client = TaskClient()
reveal_type(client.add(4, 7))
reveal_type(client.add.submit(4, 7))
_ = client.add("a", 7)
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
    assert 'Argument of type "Literal[\'a\']" cannot be assigned to parameter "x" of type "int"' in done.stdout
    assert done.returncode == 1  # exactly the flagged call makes it fail
    assert "1 error" in done.stdout
