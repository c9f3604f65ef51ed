"""The private attributes of Celery, kombu and redis-py that the worker relies on exist in the installed versions.

They are all used in `task_server._internals`; a release that renames or removes one fails here,
naming it, rather than in a worker at run time. `make test-lowest` runs this at the declared floors.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
from pathlib import Path

import pytest

import task_server
from task_server import _internals
from task_server._internals import RELIED_ON, missing

PACKAGE = Path(task_server.__file__).parent
INTERNALS = Path(_internals.__file__).parent


#: Whose private names are fenced: Celery and the libraries it brings.
LIBRARIES = {"celery", "kombu", "amqp", "redis", "billiard", "vine"}


def test_every_relied_on_name_exists_in_the_installed_versions() -> None:
    assert not missing(), f"the installed celery/kombu/redis lack: {', '.join(missing())}"


def test_a_missing_name_is_reported_by_its_full_name(monkeypatch: pytest.MonkeyPatch) -> None:
    class Lacking:
        def __init__(self) -> None:
            self.present = 1

    monkeypatch.setattr(_internals, "RELIED_ON", (*RELIED_ON, (Lacking, "present"), (Lacking, "_gone")))
    assert missing() == [f"{__name__}.{Lacking.__qualname__}._gone"]


def test_a_missing_module_name_is_reported_by_its_full_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_internals, "RELIED_ON", (*RELIED_ON, (inspect, "getsource"), (inspect, "_gone")))
    assert missing() == ["inspect._gone"]


def foreign_private_names(path: Path) -> list[str]:
    """`x._name` attribute uses in `path` whose name the file does not define itself (by a `def`,
    a class attribute or an assignment), i.e. private names of other libraries' objects."""
    tree = ast.parse(path.read_text())
    defined = {
        node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
    }
    defined |= {
        node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store)
    }
    defined |= {node.id for node in ast.walk(tree) if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store)}
    return sorted(
        f"{path.name}:{node.lineno} .{node.attr}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and node.attr.startswith("_")
        and not node.attr.startswith("__")
        and node.attr not in defined
    )


MODULES = sorted(path for path in PACKAGE.rglob("*.py") if INTERNALS not in path.parents and path.parent != INTERNALS)


@pytest.mark.parametrize("path", MODULES, ids=lambda path: str(path.relative_to(PACKAGE)))
def test_no_other_module_uses_a_foreign_private_name(path: Path) -> None:
    assert foreign_private_names(path) == [], "move it to task_server._internals"


def test_no_class_outside_internals_overrides_a_foreign_private_hook() -> None:
    overrides = []
    for info in pkgutil.walk_packages(task_server.__path__, "task_server."):
        if info.name.startswith("task_server._internals") or info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        for cls in vars(module).values():
            if not inspect.isclass(cls) or cls.__module__ != module.__name__:
                continue
            for name in vars(cls):
                if name.startswith("_") and not name.startswith("__"):
                    owners = [base for base in cls.__mro__[1:] if name in vars(base)]
                    if any(base.__module__.split(".")[0] in LIBRARIES for base in owners):
                        overrides.append(f"{cls.__module__}.{cls.__qualname__}.{name}")
    assert overrides == [], "move it to task_server._internals"


def test_every_private_name_the_internals_use_is_in_the_registry() -> None:
    """A private name used in `_internals` but not listed in a `RELIED_ON` would go unchecked."""
    registered = {name for _, name in RELIED_ON}
    used = set()
    for path in INTERNALS.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef) and node.name.startswith("_") and not node.name.startswith("__"):
                used.add(node.name)  # a hook overridden for the library
            elif isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
                on_self = isinstance(node.value, ast.Name) and node.value.id == "self"
                used |= set() if on_self else {node.attr}
            elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in LIBRARIES:
                used |= {alias.name for alias in node.names if alias.name.startswith("_")}  # `from x import _y`
    used -= {"_has", "_full_name"}  # the registry's own helpers
    assert used - registered == set()
