"""task_client touches no private attribute of Celery, kombu, amqp or redis-py (the worker fences its
own in `task_server._internals`): no use of a foreign underscore name, no override of one."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
from pathlib import Path

import task_client

PACKAGE = Path(task_client.__file__).parent
# namedtuple's public API is underscore-named so as not to clash with field names.
PUBLIC_UNDERSCORE = {"_replace", "_asdict", "_fields", "_make"}
# Written into every subclass of an abstract base class by `abc.ABCMeta` itself (redis-py's pools).
ABC_BOOKKEEPING = {"_abc_impl"}


#: Whose private names are fenced: Celery and the libraries it brings.
LIBRARIES = {"celery", "kombu", "amqp", "redis", "billiard", "vine"}


def test_no_module_uses_a_private_name_the_package_does_not_define() -> None:
    trees = {path: ast.parse(path.read_text()) for path in sorted(PACKAGE.rglob("*.py"))}
    defined = PUBLIC_UNDERSCORE.copy()
    for tree in trees.values():
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                defined.add(node.name)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                defined.add(node.attr)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                defined.add(node.id)
    foreign = [
        f"{path.name}:{node.lineno} .{node.attr}"
        for path, tree in trees.items()
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and node.attr.startswith("_")
        and not node.attr.startswith("__")
        and node.attr not in defined
    ]
    assert foreign == []


def test_no_class_overrides_a_private_hook_of_another_library() -> None:
    overrides = []
    for info in pkgutil.walk_packages(task_client.__path__, "task_client."):
        if info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        for cls in vars(module).values():
            if not inspect.isclass(cls) or cls.__module__ != module.__name__:
                continue
            for name in vars(cls):
                if name.startswith("_") and not name.startswith("__") and name not in ABC_BOOKKEEPING:
                    owners = [base for base in cls.__mro__[1:] if name in vars(base)]
                    if any(base.__module__.split(".")[0] in LIBRARIES for base in owners):
                        overrides.append(f"{cls.__module__}.{cls.__qualname__}.{name}")
    assert overrides == []
