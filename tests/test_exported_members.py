"""Each package's `__all__` is exactly its public API."""

from __future__ import annotations

import importlib
import pkgutil
import socket
import types

import pytest

import task_client
import task_contracts
import task_server
import task_server.testing
from task_server import _dev, _errors

EXPECTED = {
    task_contracts: {
        "CATALOG",
        "DEFAULT_BROKER_URL",
        "ArgumentsError",
        "CeleryUrl",
        "ConnectionConfigError",
        "ConnectionUrls",
        "Contract",
        "ContractCatalog",
        "ContractDeclarationError",
        "ContractError",
        "IncompatibleCall",
        "Crontab",
        "DeclaredError",
        "ResultError",
        "Retry",
        "Schedule",
        "SentinelAddress",
        "arguments_document",
        "asyncapi_document",
        "celery_url",
        "contract",
        "export_contracts",
        "load_catalog",
        "math",
        "redact_url",
        "reports",
        "resolve_urls",
        "result_document",
        "schedule_problems",
        "sentinel_address",
        "wire",
        "wire_name",
    },
    task_server: {
        "ContractMismatch",
        "Implementation",
        "ImplementationError",
        "InvalidArguments",
        "InvalidResult",
        "ServerError",
        "WorkerSettings",
        "create_app",
        "discover",
        "implements",
        "report_progress",
        "signature_differences",
        "verify",
    },
    task_client: {
        "AsyncCatalogClient",
        "AsyncPartial",
        "AsyncRemoteTask",
        "AsyncTaskClient",
        "AsyncTaskHandle",
        "AsyncWorkflow",
        "AsyncWorkflowHandle",
        "BatchFailed",
        "BrokerUnavailable",
        "CancelResult",
        "CatalogClient",
        "ClientClosed",
        "ClientSettings",
        "ContractMismatch",
        "InvalidArguments",
        "InvalidOptions",
        "OutcomeUnknown",
        "Partial",
        "Progress",
        "RecordRefused",
        "RemoteTask",
        "TaskCancelled",
        "TaskClient",
        "TaskError",
        "TaskExpired",
        "TaskFailed",
        "TaskHandle",
        "TaskTimeout",
        "UnknownTask",
        "VerifyKeyError",
        "WorkerInfo",
        "Workflow",
        "WorkflowHandle",
        "chord",
        "group",
        "remote",
    },
}


@pytest.mark.parametrize("package", list(EXPECTED), ids=lambda p: p.__name__)
def test_all_is_exactly_the_public_api(package: types.ModuleType) -> None:
    assert set(package.__all__) == EXPECTED[package]
    public = {name for name in vars(package) if not name.startswith("_")}
    submodules = {name for name in public if isinstance(getattr(package, name), types.ModuleType)}
    assert public - submodules - set(package.__all__) == set()
    for name in package.__all__:
        assert getattr(package, name) is not None


# One error tree per package: the root, and every exception class the package's public modules export.
ROOTS: dict[types.ModuleType, type[Exception]] = {
    task_contracts: task_contracts.ContractError,
    task_server: task_server.ServerError,
    task_client: task_client.TaskError,
}
PUBLIC_MODULES: dict[types.ModuleType, list[types.ModuleType]] = {
    task_contracts: [task_contracts, task_contracts.wire],
    task_server: [task_server, task_server.testing],
    task_client: [task_client],
}


def exported_exceptions(module: types.ModuleType) -> set[type[BaseException]]:
    names = getattr(module, "__all__", None) or [name for name in vars(module) if not name.startswith("_")]
    found = {getattr(module, name) for name in names}
    # Only the package's own classes: a module may import a standard or third-party one for its own use.
    return {
        item
        for item in found
        if isinstance(item, type)
        and issubclass(item, BaseException)
        and item.__module__.startswith(module.__name__.split(".")[0])
    }


@pytest.mark.parametrize("package", list(ROOTS), ids=lambda p: p.__name__)
def test_every_exported_exception_derives_from_the_package_root(package: types.ModuleType) -> None:
    root = ROOTS[package]
    exported = set().union(*(exported_exceptions(module) for module in PUBLIC_MODULES[package]))
    assert root in exported
    assert len(exported) > 1  # the root and its subclasses, not the root alone
    assert {item.__name__ for item in exported if not issubclass(item, root)} == set()


# Exceptions that never leave their package, each with why it sits outside the tree.
INTERNAL_SIGNALS = {
    # Caught where it is raised and turned into `BrokerUnavailable`; a redis-py error so that
    # redis-py and the client's broker-error handling treat it as a lost connection.
    "task_client._pools.PoolExhausted",
    # Raised by the AMQP header writer and always caught in `_message`: the headers go to py-amqp then.
    "task_client._amqp._Unusual",
    # Celery's own backend error type, so that Celery's store path handles it.
    "task_server._backend.BackendOutOfMemory",
    # Raised inside kombu's channel by the batch reader and caught by it.
    "task_server._batch_pop.UnreadableEnvelope",
}


@pytest.mark.parametrize("package", list(ROOTS), ids=lambda p: p.__name__)
def test_every_exception_a_package_defines_derives_from_its_root(package: types.ModuleType) -> None:
    """Private modules included: the CLI's errors reach users too (`task-server dev`'s embedded Redis)."""
    root = ROOTS[package]
    outside = set()
    for info in pkgutil.walk_packages(package.__path__, f"{package.__name__}."):
        if info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        for item in vars(module).values():
            defined_here = isinstance(item, type) and item.__module__ == module.__name__
            if defined_here and issubclass(item, BaseException) and not issubclass(item, root):
                outside.add(f"{item.__module__}.{item.__qualname__}")
    assert outside == {name for name in INTERNAL_SIGNALS if name.split(".")[0] == package.__name__}


def test_the_dev_servers_errors_are_server_errors() -> None:
    assert issubclass(_errors.EmbeddedRedisError, task_server.ServerError)
    assert issubclass(_errors.PortTaken, _errors.EmbeddedRedisError)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("127.0.0.1", 0))  # taken for `choose_port`, which only tries to bind it
        with pytest.raises(task_server.ServerError, match=r"port \d+ on 127.0.0.1 is taken") as caught:
            _dev.choose_port(holder.getsockname()[1])
    assert isinstance(caught.value, _errors.PortTaken)
