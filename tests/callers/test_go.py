"""The generated Go caller, end to end: `go test` of tests/callers/go/ against real workers, built
in GOPATH mode from Debian's redigo and uuid packages (the module proxy is not reachable here)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from .conftest import HERE, Servers, docs_example, require_tool, shared_cache
from .generated import generate

# A cold build (Go without its cache, tsc) on a loaded machine takes longer than the suite default.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

GO_PACKAGES = "golang-go, golang-github-gomodule-redigo-dev and golang-github-google-uuid-dev"
DEBIAN_GOPATH = Path("/usr/share/gocode")
MODULE = "example.com/tasks"


@pytest.fixture(scope="module")
def gopath(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A GOPATH holding the caller generated for the test catalog and the two test programs."""
    require_tool("go", GO_PACKAGES)
    for package in ("github.com/gomodule/redigo/redis", "github.com/google/uuid"):
        if not (DEBIAN_GOPATH / "src" / package).is_dir():
            pytest.fail(f"{DEBIAN_GOPATH / 'src' / package} missing: install the Debian packages {GO_PACKAGES}")
    root = tmp_path_factory.mktemp("gopath")
    generate("go", root / "src" / MODULE, "--go-module", MODULE)
    shutil.copytree(HERE / "go", root / "src" / "example.com" / "callers")
    shutil.copytree(HERE / "go_refuse", root / "src" / "example.com" / "refuse")
    (root / "src" / "example.com" / "docs").mkdir()
    (root / "src" / "example.com" / "docs" / "main.go").write_text(docs_example("main.go"))
    return root


def go(gopath: Path, *args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    variables = {
        **os.environ,
        "GO111MODULE": "off",
        "GOPATH": f"{gopath}:{DEBIAN_GOPATH}",
        "GOCACHE": str(shared_cache("go-build")),
        "GOFLAGS": "",
        **(env or {}),
    }
    return subprocess.run(
        ["go", *args], cwd=cwd, env=variables, capture_output=True, text=True, timeout=300, check=False
    )


def test_go_caller_calls_real_workers(gopath: Path, servers: Servers) -> None:
    done = go(gopath, "test", "-count=1", "-v", ".", cwd=gopath / "src" / "example.com" / "callers", env=servers.env())
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-5000:]
    for name in (
        "TestAdd",
        "TestMulByNamedArguments",
        "TestStatsIsTyped",
        "TestModelsOptionalsAndDefaults",
        "TestInvalidCallPublishesNothing",
        "TestFailureNamesTheRemoteError",
        "TestUnservedNameIsUnknownTask",
        "TestNoWorkerTimesOutWithinTheBound",
        "TestRedisDownIsBrokerUnavailable",
        "TestEvolvedWorkerAnswersTheOlderCaller",
        "TestBreakingChangesAreContractMismatch",
        "TestCancelBeforeStart",
    ):
        assert f"--- PASS: {name} " in output, output[-5000:]
    servers.assert_quiet_untouched_by_invalid_calls()


def test_go_build_refuses_a_string_for_an_int(gopath: Path) -> None:
    done = go(gopath, "build", "-o", os.devnull, ".", cwd=gopath / "src" / "example.com" / "refuse")
    assert done.returncode != 0
    assert 'cannot use "a"' in done.stderr, done.stderr


def test_generated_go_is_gofmt_clean(gopath: Path) -> None:
    require_tool("gofmt", GO_PACKAGES)
    done = subprocess.run(["gofmt", "-l", str(gopath / "src" / MODULE)], capture_output=True, text=True, check=False)
    assert done.returncode == 0 and done.stdout == "", done.stdout + done.stderr


def test_the_docs_go_example_runs(gopath: Path, servers: Servers) -> None:
    done = go(gopath, "run", ".", cwd=gopath / "src" / "example.com" / "docs", env={"REDIS_URL": servers.main})
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["11 <nil>", "3 6.5 <nil>"]
