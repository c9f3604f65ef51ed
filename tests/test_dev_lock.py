"""The development environment is pinned: every package installed in it is in requirements-dev.lock, at that version."""

from __future__ import annotations

import re
from importlib import metadata

from .conftest import REPO_ROOT

OURS = {"task-contracts", "task-server", "task-client"}


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def locked() -> dict[str, str]:
    pins = {}
    for line in (REPO_ROOT / "requirements-dev.lock").read_text().splitlines():
        found = re.match(r"([A-Za-z0-9_.-]+)==([^ ;]+)", line)
        if found:
            pins[normalized(found[1])] = found[2]
    return pins


def test_every_installed_package_is_locked_at_its_installed_version() -> None:
    pins = locked()
    installed = {normalized(dist.metadata["Name"]): dist.version for dist in metadata.distributions()}
    # pip itself is upgraded by `make install` before the lock applies; the lowest virtualenv is not this one.
    unpinned = {name: version for name, version in installed.items() if name not in pins and name not in OURS | {"pip"}}
    assert not unpinned, f"installed but not in requirements-dev.lock (run `make lock`): {unpinned}"
    differ = {name: (version, pins[name]) for name, version in installed.items() if pins.get(name, version) != version}
    assert not differ, f"installed version differs from requirements-dev.lock (run `make install`): {differ}"
