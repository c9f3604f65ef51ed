"""Each package's `__all__` is exactly its public API."""

from __future__ import annotations

import types

import pytest

import task_client
import task_contracts
import task_server

EXPECTED = {
    task_contracts: {
        "CATALOG",
        "DEFAULT_BROKER_URL",
        "ArgumentsError",
        "ConnectionConfigError",
        "ConnectionUrls",
        "Contract",
        "ContractCatalog",
        "ContractDeclarationError",
        "Crontab",
        "DeclaredError",
        "ResultError",
        "Retry",
        "Schedule",
        "arguments_document",
        "asyncapi_document",
        "contract",
        "diagnostics",
        "export_contracts",
        "load_catalog",
        "math",
        "redact_url",
        "reports",
        "resolve_urls",
        "result_document",
        "schedule_problems",
        "wire",
    },
    task_server: {
        "ContractMismatch",
        "Implementation",
        "ImplementationError",
        "InvalidArguments",
        "InvalidResult",
        "WorkerSettings",
        "create_app",
        "discover",
        "implements",
        "report_progress",
        "signature_differences",
        "verify",
    },
    task_client: {
        "AsyncRemoteTask",
        "AsyncTaskClient",
        "AsyncTaskHandle",
        "BatchFailed",
        "BrokerUnavailable",
        "CancelResult",
        "ClientClosed",
        "ClientSettings",
        "ContractMismatch",
        "InvalidArguments",
        "OutcomeUnknown",
        "Progress",
        "RemoteTask",
        "TaskCancelled",
        "TaskClient",
        "TaskError",
        "TaskExpired",
        "TaskFailed",
        "TaskHandle",
        "TaskTimeout",
        "UnknownTask",
        "WorkerInfo",
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
