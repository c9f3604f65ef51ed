"""Generate a caller for the test catalog with the real command, as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from ..conftest import REPO_ROOT

CALLERS_CATALOG = "tests.callers.contracts:CALLERS"


def generate(language: str, out: Path, *extra: str, catalog: str = CALLERS_CATALOG) -> Path:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "task_contracts._cli",
            "generate",
            language,
            "--out",
            str(out),
            "--catalog",
            catalog,
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    assert done.returncode == 0, done.stderr
    return out
