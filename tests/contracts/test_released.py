"""The shipped catalog stays compatible with the contracts of the last release (as `make check-compat`)."""

from __future__ import annotations

from pathlib import Path

from task_contracts import CATALOG, export_contracts
from task_contracts._diff import diff_exports, load_export

from ..conftest import REPO_ROOT

RELEASED = REPO_ROOT / "contracts" / "released"


def last_release() -> Path:
    versions = [path for path in RELEASED.iterdir() if (path / "contracts.json").is_file()]
    assert versions, f"no released export under {RELEASED}"
    return max(versions, key=lambda path: tuple(int(part) for part in path.name.split(".")))


def test_every_change_since_the_last_release_is_compatible(tmp_path: Path) -> None:
    export_contracts(tmp_path, CATALOG)
    changes = diff_exports(load_export(last_release()), load_export(tmp_path))
    breaking = [str(change) for change in changes if not change.rule.compatible]
    assert breaking == [], "breaking changes since the last release; declare a new major version instead"


def test_the_released_export_is_the_one_of_this_version() -> None:
    # The version that ships this release's contracts has its export kept, never edited afterwards.
    version = next(
        line.split('"')[1]
        for line in (REPO_ROOT / "contracts" / "pyproject.toml").read_text().splitlines()
        if line.startswith("version = ")
    )
    assert (RELEASED / version / "contracts.json").is_file(), f"export the contracts of {version} into {RELEASED}"
