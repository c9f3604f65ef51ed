"""The generated PHP caller, end to end: phpunit runs tests/callers/php/CallersTest.php against real
workers, with the generated autoload.php as bootstrap (Debian's php-cli, php-redis and phpunit)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from .conftest import HERE, Servers, docs_example, require_tool
from .generated import generate

# A cold build (Go without its cache, tsc) on a loaded machine takes longer than the suite default.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

PHP_PACKAGES = "php-cli, php-redis and phpunit"


@pytest.fixture(scope="module")
def php_caller(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_tool("php", PHP_PACKAGES)
    require_tool("phpunit", PHP_PACKAGES)
    modules = subprocess.run(["php", "-m"], capture_output=True, text=True, check=True).stdout.split()
    if "redis" not in modules:
        pytest.fail(f"PHP has no redis extension: install the Debian packages {PHP_PACKAGES}")
    return generate("php", tmp_path_factory.mktemp("php"))


def test_php_caller_calls_real_workers(php_caller: Path, servers: Servers) -> None:
    done = subprocess.run(
        [
            "phpunit",
            "--do-not-cache-result",
            "--bootstrap",
            str(php_caller / "autoload.php"),
            "--testdox",
            str(HERE / "php" / "CallersTest.php"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, **servers.env()},
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-5000:]
    assert "OK (13 tests" in output, output[-5000:]
    servers.assert_quiet_untouched_by_invalid_calls()


def test_generated_php_has_no_syntax_error_and_declares_strict_types(php_caller: Path) -> None:
    for path in sorted(php_caller.glob("*.php")):
        done = subprocess.run(["php", "-l", str(path)], capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "declare(strict_types=1);" in path.read_text(), path.name


def test_the_docs_php_example_runs(php_caller: Path, servers: Servers, tmp_path: Path) -> None:
    (tmp_path / "tasks").symlink_to(php_caller)
    (tmp_path / "example.php").write_text(docs_example("example.php"))
    done = subprocess.run(
        ["php", str(tmp_path / "example.php")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "REDIS_URL": servers.main},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines() == ["11", "3 6.5", "ZeroDivisionError"]
