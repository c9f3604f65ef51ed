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
from .conftest import HERE, Servers, require_tool
from .generated import generate

pytestmark = pytest.mark.e2e

NODE_MODULES = REPO_ROOT / ".venv" / "npm" / "node_modules"
TSC = NODE_MODULES / "typescript" / "bin" / "tsc"
COMPILER_OPTIONS = {"target": "ES2022", "module": "commonjs", "strict": True, "outDir": "dist", "skipLibCheck": True}


def project(root: Path, *files: str) -> Path:
    """A tsconfig.json compiling `files` with the generated caller; returns it."""
    config = root / f"tsconfig.{len(files)}.json"
    config.write_text(json.dumps({"compilerOptions": COMPILER_OPTIONS, "files": list(files)}))
    return config


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
    return root


def tsc(root: Path, config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["node", str(TSC), "-p", str(config)], cwd=root, capture_output=True, text=True, timeout=300, check=False
    )


def test_typescript_caller_calls_real_workers(ts_root: Path, servers: Servers) -> None:
    built = tsc(ts_root, project(ts_root, "test/callers.test.ts"))
    assert built.returncode == 0, built.stdout + built.stderr
    done = subprocess.run(
        ["node", "--test", str(ts_root / "dist" / "test" / "callers.test.js")],
        cwd=ts_root,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, **servers.env()},
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-5000:]
    assert "# pass 11" in output and "# fail 0" in output, output[-3000:]
    servers.assert_quiet_untouched_by_invalid_calls()


def test_tsc_strict_refuses_a_string_for_a_number(ts_root: Path) -> None:
    done = tsc(ts_root, project(ts_root, "test/refuse.ts", "generated/index.ts"))
    assert done.returncode != 0
    errors = [line for line in done.stdout.splitlines() if "error TS" in line]
    # One error, on the call itself: the generated files compile under --strict.
    assert len(errors) == 1 and errors[0].startswith("test/refuse.ts(4,") and "TS2345" in errors[0], done.stdout


def test_generated_package_compiles_with_its_own_strict_tsconfig(ts_root: Path) -> None:
    done = tsc(ts_root, ts_root / "generated" / "tsconfig.json")
    assert done.returncode == 0, done.stdout + done.stderr
    assert (ts_root / "generated" / "dist" / "client.d.ts").is_file()
