"""`mypy --strict` accepts contract stubs written as the docs show, with no file-level ignore."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ..conftest import REPO_ROOT
from ..strict_mypy import mypy_strict

pytestmark = pytest.mark.xdist_group("mypy")  # one test process, one mypy cache (tests/strict_mypy.py)

SHIPPED = ("math.py", "reports.py")


def documented_contract() -> str:
    text = (REPO_ROOT / "docs" / "concepts.md").read_text()
    section = text.split("## A contract", 1)[1]
    found = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert found, "docs/concepts.md: the contract section has no example"
    return found.group(1)


def test_a_team_catalog_written_as_the_docs_show_passes_strict_mypy(tmp_path: Path) -> None:
    catalog = tmp_path / "billing_contracts.py"
    catalog.write_text(
        documented_contract()
        + '''

@contract(name="billing.refund", queue="billing", timeout=20)
def refund(receipt_id: str, cents: int | None = None) -> list[str]:
    """Refund a receipt, in whole or in part."""
    raise NotImplementedError
'''
    )
    stdout, status = mypy_strict(str(catalog))
    assert status == 0, stdout
    assert "disable-error-code" not in catalog.read_text()


def test_the_shipped_contract_modules_need_no_file_level_ignore() -> None:
    for name in SHIPPED:
        source = (REPO_ROOT / "contracts" / "src" / "task_contracts" / name).read_text()
        assert "disable-error-code" not in source and "type: ignore" not in source, name
