"""`make test` checks the Debian packages the suite needs before any test runs (scripts/system-packages).

Where it cannot install them (not root, or no apt-get) it stops with one line naming them.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from .conftest import REPO_ROOT

SCRIPT = REPO_ROOT / "scripts" / "system-packages"
NOBODY = 65534


def listed_packages() -> list[str]:
    """The Debian package names in the script's PACKAGES list."""
    text = SCRIPT.read_text()
    block = text.split("PACKAGES=(", 1)[1].split("\n)", 1)[0]
    return [match.group(1) for match in re.finditer(r'^\s*"([a-z0-9.+-]+) ', block, re.MULTILINE)]


def run_script(path: Path, *, user: int | None = None, script: Path = SCRIPT) -> subprocess.CompletedProcess[str]:
    """The script with only `path` on PATH (none of the programs it looks for) and a clean environment."""
    environment = {"PATH": str(path), "TASK_RABBITMQ_BIN": str(path)}
    return subprocess.run(
        ["/bin/bash", str(script)],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd="/",
        user=user,
    )


def test_the_list_holds_every_package_the_suite_uses() -> None:
    assert listed_packages() == [
        "redis-server",
        "redis-sentinel",
        "rabbitmq-server",
        "nodejs",
        "npm",
        "golang-go",
        "golang-github-gomodule-redigo-dev",
        "golang-github-google-uuid-dev",
        "php-cli",
        "php-redis",
        "phpunit",
    ]


def test_without_apt_get_it_names_every_missing_package_in_one_line(tmp_path: Path) -> None:
    done = run_script(tmp_path)
    assert done.returncode == 1
    assert done.stdout == ""
    (line,) = done.stderr.splitlines()
    assert line.startswith("make test needs these Debian packages, not installed: ")
    named = line.split(": ", 1)[1].split(" (", 1)[0].split()
    assert named == listed_packages()


def test_not_root_it_names_them_and_never_calls_apt_get() -> None:
    # As root, the script runs as `nobody`, from a directory `nobody` may read and write.
    user = NOBODY if os.geteuid() == 0 else None
    with tempfile.TemporaryDirectory(prefix="task-fake-path-") as directory:
        path = Path(directory)
        path.chmod(0o1777)
        called = path / "apt-get-was-called"
        apt_get = path / "apt-get"
        apt_get.write_text(f"#!/bin/sh\ntouch {called}\n")
        apt_get.chmod(0o755)
        found = subprocess.run(
            ["/bin/sh", "-c", "command -v apt-get"], env={"PATH": directory}, user=user, capture_output=True, text=True
        )
        assert found.stdout.strip() == str(apt_get), "the fake apt-get is not reachable: the test proves nothing"

        # A copy `nobody` can read wherever the checkout lives (`mktemp -d` makes a 0700 directory).
        script = Path(shutil.copy(SCRIPT, path / SCRIPT.name))
        done = run_script(path, user=user, script=script)
        assert done.returncode == 1, done.stderr
        (line,) = done.stderr.splitlines()
        assert line.startswith("make test needs these Debian packages, not installed: redis-server ")
        assert not called.exists()


def test_make_test_checks_the_packages_before_pytest_runs() -> None:
    done = subprocess.run(
        ["make", "--dry-run", "--always-make", "test"], capture_output=True, text=True, timeout=60, cwd=REPO_ROOT
    )
    lines = done.stdout.splitlines()
    check = lines.index("scripts/system-packages")
    assert check < next(number for number, line in enumerate(lines) if "-m pytest" in line)
    assert check < next(number for number, line in enumerate(lines) if line.startswith("npm install"))
