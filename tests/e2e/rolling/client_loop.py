"""A client that calls `math.add` and `math.stats` continuously until a stop file appears.

Run by the Python of one deployed version (`python client_loop.py URL STOP REPORT`), so it uses
that version's task-client and contracts. After each call pair it rewrites REPORT (JSON): calls
that succeeded with the right result, failures, task ids, and how many `Stats` results carried
`mean` (answered by a worker that knows the field) or left it None (a worker that does not).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from task_client import TaskClient

BOUND = 60.0  # longer than the gap between the old worker's stop and the new one's start


def main(url: str, stop: Path, report: Path) -> None:
    state: dict[str, Any] = {"ok": 0, "failures": [], "ids": [], "mean_none": 0, "mean_set": 0}
    with TaskClient(url) as client:
        add, stats = client.add.with_options(timeout=BOUND), client.stats.with_options(timeout=BOUND)
        number = 0
        while not stop.exists():
            number += 1
            try:
                added = add.submit(number, 2)
                if (value := added.result()) != number + 2:
                    raise AssertionError(f"add({number}, 2) returned {value!r}")
                summarised = stats.submit([number, 0.5])
                summary = summarised.result()
                if (summary.count, summary.total) != (2, number + 0.5):
                    raise AssertionError(f"stats([{number}, 0.5]) returned {summary!r}")
                mean = getattr(summary, "mean", "absent")  # the field exists only in the newer contract
                if mean is None:
                    state["mean_none"] += 1
                elif mean != "absent":
                    if mean != (number + 0.5) / 2:
                        raise AssertionError(f"stats([{number}, 0.5]).mean is {mean!r}")
                    state["mean_set"] += 1
                state["ok"] += 1
                state["ids"] += [added.id, summarised.id]
            except Exception as error:  # every failure is counted and reported, none stops the loop
                state["failures"].append(f"{type(error).__name__}: {error}")
            partial = report.with_suffix(".partial")
            partial.write_text(json.dumps(state))
            os.replace(partial, report)  # the test never reads half a report


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]))
