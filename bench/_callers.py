"""Round trips of the generated Go, PHP and TypeScript callers (examples/generated, the shipped
catalog) against task-client's, on the same worker in the same run.

Each language's program makes `calls` sequential `add(4, 7)` calls after the same warm-up as the
Python sides and prints every call's seconds; task-client's calls are timed right after each
program, so each row compares the two under the same conditions. No targets: these rows say what
a caller in another language costs, not what it must meet. A missing toolchain drops its row with
a note on stderr.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from task_client import TaskClient

from ._report import Row

REPO_ROOT = Path(__file__).resolve().parent.parent
GENERATED = REPO_ROOT / "examples" / "generated"
PROGRAMS = Path(__file__).resolve().parent / "callers"
NODE_MODULES = REPO_ROOT / ".venv" / "npm" / "node_modules"


def caller_round_trips(url: str, calls: int) -> list[Row]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-callers-") as scratch, TaskClient(url) as client:
        for language, build in (("Go", _go), ("PHP", _php), ("TypeScript", _typescript)):
            try:
                command = build(Path(scratch))
                done = subprocess.run(
                    [*command, url, str(calls)], capture_output=True, text=True, timeout=600, check=True
                )
            except (OSError, subprocess.CalledProcessError) as error:
                detail = getattr(error, "stderr", "") or ""
                print(f"  {language} caller row skipped: {error} {detail[-500:]}", file=sys.stderr)
                continue
            theirs = json.loads(done.stdout)
            ours = _time(lambda: client.add(4, 7), calls)
            rows.append(
                Row(
                    f"round trip p50: generated {language} caller add(4, 7) vs client.add(4, 7)",
                    "ms",
                    _percentile(theirs, 50) * 1e3,
                    _percentile(ours, 50) * 1e3,
                    "lower",
                    None,
                    {
                        "calls_per_side": calls,
                        "p99_ms": round(_percentile(theirs, 99) * 1e3, 3),
                        "task_client_p99_ms": round(_percentile(ours, 99) * 1e3, 3),
                    },
                )
            )
    return rows


def _time(call: Callable[[], object], calls: int) -> list[float]:
    for _ in range(30):
        call()
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return times


def _percentile(values: list[float], percent: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * percent / 100))]


def _go(scratch: Path) -> list[str]:
    gopath = scratch / "gopath"
    (gopath / "src" / "example.com").mkdir(parents=True)
    (gopath / "src" / "example.com" / "tasks").symlink_to(GENERATED / "go")
    program = gopath / "src" / "example.com" / "bench"
    program.mkdir()
    shutil.copy(PROGRAMS / "round_trips.go", program / "main.go")
    env = {**os.environ, "GO111MODULE": "off", "GOPATH": f"{gopath}:/usr/share/gocode", "GOFLAGS": ""}
    env.setdefault("GOCACHE", str(REPO_ROOT / ".venv" / "callers-cache" / "go-build"))
    binary = scratch / "round_trips"
    subprocess.run(
        ["go", "build", "-o", str(binary), "."], cwd=program, env=env, check=True, capture_output=True, text=True
    )
    return [str(binary)]


def _php(scratch: Path) -> list[str]:
    del scratch
    return ["php", str(PROGRAMS / "round_trips.php"), str(GENERATED / "php" / "autoload.php")]


def _typescript(scratch: Path) -> list[str]:
    root = scratch / "ts"
    shutil.copytree(GENERATED / "typescript", root / "generated")
    (root / "bench").mkdir()
    shutil.copy(PROGRAMS / "round_trips.ts", root / "bench" / "round_trips.ts")
    (root / "node_modules").symlink_to(NODE_MODULES)
    config = {
        "compilerOptions": {
            "target": "ES2022",
            "module": "commonjs",
            "strict": True,
            "outDir": "dist",
            "skipLibCheck": True,
        },
        "files": ["bench/round_trips.ts"],
    }
    (root / "tsconfig.json").write_text(json.dumps(config))
    tsc = NODE_MODULES / "typescript" / "bin" / "tsc"
    subprocess.run(["node", str(tsc), "-p", "."], cwd=root, check=True, capture_output=True, text=True)
    return ["node", str(root / "dist" / "bench" / "round_trips.js")]
