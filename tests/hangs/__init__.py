"""A team catalog whose calls can hang, on the queue `ops`: the worker must keep serving the others.

Workers serve it with `serving(markers)`; a hung call waits until the test releases its marker
(a file in `TASK_DIAGNOSTICS_DIR`) or `contracts.HANG_LIMIT` seconds pass, so no test leaves a
thread blocked for good.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
CATALOG = "tests.hangs.contracts:CATALOG"
IMPLEMENTATIONS = ("tests.hangs.implementations",)


def serving(markers: Path) -> dict[str, Any]:
    """`WorkerProcess` keyword arguments that serve this catalog, with its markers in `markers`."""
    return {
        "catalog": CATALOG,
        "implementations": IMPLEMENTATIONS,
        "queues": ["ops"],
        "env": {"PYTHONPATH": str(REPO_ROOT), "TASK_DIAGNOSTICS_DIR": str(markers)},
    }
