# Contract stubs have no body by design.
# mypy: disable-error-code="empty-body"
"""`task-contracts diff`: one test per rule of the compatibility table, on real exports.

Each case declares a contract before and after a change, exports both catalogs with
`task-contracts export`'s own code, and checks that the diff reports exactly that rule.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pydantic
import pytest

from task_contracts import Contract, ContractCatalog, contract, export_contracts
from task_contracts._compat import RULES
from task_contracts._diff import diff_exports, load_export

from ..conftest import REPO_ROOT


class Total(pydantic.BaseModel):
    total: int


class TotalCount(pydantic.BaseModel):
    total: int
    count: int = 0


class TotalCountRequired(pydantic.BaseModel):
    total: int
    count: int


class TotalFloat(pydantic.BaseModel):
    total: float


class TotalText(pydantic.BaseModel):
    total: str


class TotalMaybeCount(pydantic.BaseModel):
    total: int
    count: int = 0


class TotalOnly(pydantic.BaseModel):
    total: int


def add(**options: Any) -> Any:
    """`@contract` for math.add with the usual options, overridable."""
    return contract(**{"name": "math.add", "queue": "math", "timeout": 10, "idempotent": True, **options})


@add()
def base(x: int, y: int) -> int:
    """Return x + y."""


@add()
def with_optional_z(x: int, y: int, z: int = 0) -> int:
    """Return x + y."""


@add()
def with_required_z(x: int, y: int, z: int) -> int:
    """Return x + y."""


@add()
def without_y(x: int) -> int:
    """Return x + y."""


@add()
def y_renamed(x: int, other: int) -> int:
    """Return x + y."""


@add()
def y_nullable(x: int, y: int | None) -> int:
    """Return x + y."""


@add()
def y_float(x: int, y: float) -> int:
    """Return x + y."""


@add()
def y_str(x: int, y: str) -> int:
    """Return x + y."""


@add()
def y_default_one(x: int, y: int = 1) -> int:
    """Return x + y."""


@add()
def y_default_two(x: int, y: int = 2) -> int:
    """Return x + y."""


@add()
def result_float(x: int, y: int) -> float:
    """Return x + y."""


@add()
def result_str(x: int, y: int) -> str:
    """Return x + y."""


@add(queue="math-eu")
def other_queue(x: int, y: int) -> int:
    """Return x + y."""


@add(timeout=20)
def longer_timeout(x: int, y: int) -> int:
    """Return x + y."""


@add(idempotent=False)
def not_idempotent(x: int, y: int) -> int:
    """Return x + y."""


@add()
def new_docstring(x: int, y: int) -> int:
    """Return the sum of x and y (reworded)."""


def total(result: type) -> Contract[..., Any]:
    def stub(numbers: list[int]) -> Any: ...

    stub.__annotations__["return"] = result
    return contract(name="math.total", queue="math", timeout=10)(stub)


@contract(name="math.add", queue="math", timeout=10, idempotent=True, cpu_bound=False)
def light(x: int, y: int) -> int:
    """Return the sum of x and y."""


@contract(name="math.add", queue="math", timeout=10, idempotent=True, cpu_bound=False, on_event_loop=True)
def on_the_loop(x: int, y: int) -> int:
    """Return the sum of x and y."""


@contract(name="math.sub", queue="math", timeout=10)
def sub(x: int, y: int) -> int:
    """Return x - y."""


#: rule -> (old catalog, new catalog): the change that rule describes, and nothing else.
CASES: dict[str, tuple[list[Contract[..., Any]], list[Contract[..., Any]]]] = {
    "parameter-added-optional": ([base], [with_optional_z]),
    "parameter-added-required": ([base], [with_required_z]),
    "parameter-removed": ([base], [without_y]),
    "parameter-renamed": ([base], [y_renamed]),
    "parameter-type-widened": ([base], [y_nullable]),
    "parameter-type-narrowed": ([y_nullable], [base]),
    "parameter-type-changed": ([base], [y_str]),
    "parameter-default-changed": ([y_default_one], [y_default_two]),
    "parameter-default-added": ([base], [y_default_one]),
    "parameter-default-removed": ([y_default_one], [base]),
    "result-field-added-optional": ([total(Total)], [total(TotalCount)]),
    "result-field-added-required": ([total(Total)], [total(TotalCountRequired)]),
    "result-field-removed": ([total(TotalCountRequired)], [total(Total)]),
    "result-field-removed-optional": ([total(TotalMaybeCount)], [total(TotalOnly)]),
    "result-type-widened": ([base], [result_float]),
    "result-type-narrowed": ([result_float], [base]),
    "result-type-changed": ([base], [result_str]),
    "queue-changed": ([base], [other_queue]),
    "timeout-changed": ([base], [longer_timeout]),
    "idempotency-changed": ([base], [not_idempotent]),
    "event-loop-changed": ([light], [on_the_loop]),
    "description-changed": ([base], [new_docstring]),
    "contract-added": ([base], [base, sub]),
    "contract-removed": ([base, sub], [base]),
}


def exported(tmp_path: Path, name: str, contracts: list[Contract[..., Any]]) -> Path:
    directory = tmp_path / name
    export_contracts(directory, ContractCatalog(*contracts))
    return directory


def test_every_rule_has_a_case() -> None:
    assert set(CASES) == set(RULES)


@pytest.mark.parametrize("rule", list(CASES))
def test_each_rule_is_reported_alone_with_its_class(rule: str, tmp_path: Path) -> None:
    old, new = CASES[rule]
    changes = diff_exports(load_export(exported(tmp_path, "old", old)), load_export(exported(tmp_path, "new", new)))
    assert [change.rule.id for change in changes] == [rule], [str(change) for change in changes]
    assert changes[0].rule is RULES[rule]


def test_the_wider_type_is_named_in_the_detail(tmp_path: Path) -> None:
    changes = diff_exports(
        load_export(exported(tmp_path, "old", [base])), load_export(exported(tmp_path, "new", [y_float]))
    )
    assert [str(change) for change in changes] == [
        "math.add: parameter 'y' type widened: int -> float [parameter-type-widened: compatible]"
    ]


def test_a_new_major_version_beside_the_old_one_is_compatible(tmp_path: Path) -> None:
    @add(version=2)
    def add_v2(x: int, y: int, z: int) -> int: ...

    changes = diff_exports(
        load_export(exported(tmp_path, "old", [base])), load_export(exported(tmp_path, "new", [base, add_v2]))
    )
    assert [(change.contract, change.rule.id) for change in changes] == [("math.add.v2", "contract-added")]


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "task_contracts._cli", *args], capture_output=True, text=True, timeout=120
    )


def test_the_command_prints_each_change_and_exits_by_class(tmp_path: Path) -> None:
    old = exported(tmp_path, "old", [base])
    compatible = run_cli("diff", str(old), str(exported(tmp_path, "compatible", [with_optional_z])))
    assert compatible.returncode == 0, compatible.stderr
    assert "math.add: parameter 'z' added with default 0 [parameter-added-optional: compatible]" in compatible.stdout
    assert compatible.stdout.endswith("\n1 change, 0 breaking\n")  # not "1 changes"
    breaking = run_cli("diff", str(old), str(exported(tmp_path, "breaking", [y_str])), "--json")
    assert breaking.returncode == 1, breaking.stderr
    report = json.loads(breaking.stdout)
    assert report["compatible"] is False
    assert report["changes"] == [
        {
            "contract": "math.add",
            "rule": "parameter-type-changed",
            "detail": "parameter 'y' type changed: int -> str",
            "compatible": False,
            "breaks_for": ["old clients", "new clients", "queued messages"],
        }
    ]
    unchanged = run_cli("diff", str(old), str(old))
    assert (unchanged.returncode, unchanged.stdout) == (0, "no changes\n")
    missing = run_cli("diff", str(old), str(tmp_path / "nowhere"))
    assert missing.returncode == 2 and "neither an export directory nor a .whl file" in missing.stderr


def test_the_docs_table_is_the_rules_table() -> None:
    text = (REPO_ROOT / "docs" / "compatibility.md").read_text()
    rows = re.findall(r"^\| `([a-z-]+)` \|.*\| ([^|]+) \|$", text, re.MULTILINE)
    assert [rule for rule, _ in rows] == list(RULES)
    for rule, verdict in rows:
        assert verdict.strip().startswith(RULES[rule].verdict), (rule, verdict)


def test_a_reader_that_goes_away_ends_the_command_quietly(tmp_path: Path) -> None:
    # `task-contracts diff --json | head -1`: the pipe is closed before the command writes.
    old = exported(tmp_path, "old", [base])
    new = exported(tmp_path, "new", [y_str])
    command = [sys.executable, "-m", "task_contracts._cli", "diff", "--json", str(old), str(new)]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as process:
        assert process.stdout is not None and process.stderr is not None
        process.stdout.close()
        stderr = process.stderr.read().decode()
        assert process.wait(timeout=120) == 1
    assert "Traceback" not in stderr and "BrokenPipeError" not in stderr, stderr
