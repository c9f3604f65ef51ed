"""The generated TypeScript caller, end to end: tsc --strict compiles it with
tests/callers/typescript/callers.test.ts, and node --test runs that against real workers (ioredis,
typescript and @types/node come from `make install`, under .venv/npm)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from ..conftest import REPO_ROOT
from .conftest import HERE, Servers, docs_example, require_tool
from .generated import generate

# A cold build (Go without its cache, tsc) on a loaded machine takes longer than the suite default.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

NODE_MODULES = REPO_ROOT / ".venv" / "npm" / "node_modules"
TSC = NODE_MODULES / "typescript" / "bin" / "tsc"


@pytest.fixture(scope="module")
def ts_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_tool("node", "nodejs and npm")
    for package in ("ioredis", "typescript", "@types/node"):
        if not (NODE_MODULES / package / "package.json").is_file():
            pytest.fail(f"npm package {package} missing under {NODE_MODULES}: run `make install`")
    root = tmp_path_factory.mktemp("ts")
    generate("typescript", root / "generated")
    shutil.copytree(HERE / "typescript", root / "test")
    (root / "node_modules").symlink_to(NODE_MODULES)
    (root / "docs").mkdir()
    (root / "docs" / "tasks").symlink_to(root / "generated")
    (root / "docs" / "example.ts").write_text(docs_example("example.ts"))
    return root


@pytest.fixture(scope="module")
def compiled(ts_root: Path) -> subprocess.CompletedProcess[str]:
    """One tsc run (tsc is the slow part) over the test program and the refused call, with the
    generated package's own compiler options (strict); tsc still writes the JavaScript of files
    without errors."""
    generated = (ts_root / "generated" / "tsconfig.json").read_text()
    options = json.loads(generated[generated.index("{") :])["compilerOptions"]
    config = ts_root / "tsconfig.json"
    config.write_text(
        json.dumps({"compilerOptions": options, "files": ["test/callers.test.ts", "test/refuse.ts", "docs/example.ts"]})
    )
    return subprocess.run(
        ["node", str(TSC), "-p", str(config)], cwd=ts_root, capture_output=True, text=True, timeout=300, check=False
    )


def test_tsc_strict_refuses_a_string_for_a_number(compiled: subprocess.CompletedProcess[str]) -> None:
    errors = [line for line in compiled.stdout.splitlines() if "error TS" in line]
    # One error, on the refused call: the generated files and the test program compile under strict.
    assert len(errors) == 1 and errors[0].startswith("test/refuse.ts(4,") and "TS2345" in errors[0], compiled.stdout


def test_typescript_caller_calls_real_workers(
    ts_root: Path, compiled: subprocess.CompletedProcess[str], servers: Servers
) -> None:
    program = ts_root / "dist" / "test" / "callers.test.js"
    assert program.is_file(), compiled.stdout + compiled.stderr
    done = subprocess.run(
        ["node", "--test", str(program)],
        cwd=ts_root,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, **servers.env()},
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-5000:]
    assert "# pass 12" in output and "# fail 0" in output, output[-3000:]
    servers.assert_quiet_untouched_by_invalid_calls()


def test_the_docs_typescript_example_runs(
    ts_root: Path, compiled: subprocess.CompletedProcess[str], servers: Servers
) -> None:
    program = ts_root / "dist" / "docs" / "example.js"
    assert program.is_file(), compiled.stdout + compiled.stderr
    done = subprocess.run(
        ["node", str(program)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "REDIS_URL": servers.main},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines() == ["11", "3 6.5", "ZeroDivisionError"]
