"""task-client: call task contracts by name through Celery, typed and bounded."""

from ._cancel import CancelResult
from ._client import AsyncCatalogClient, AsyncTaskClient, CatalogClient, TaskClient
from ._errors import (
    BatchFailed,
    BrokerUnavailable,
    ClientClosed,
    ContractMismatch,
    InvalidArguments,
    InvalidOptions,
    OutcomeUnknown,
    RecordRefused,
    TaskCancelled,
    TaskError,
    TaskExpired,
    TaskFailed,
    TaskTimeout,
    UnknownTask,
    VerifyKeyError,
)
from ._handle import AsyncTaskHandle, TaskHandle
from ._inspect import WorkerInfo
from ._progress import Progress
from ._remote import AsyncRemoteTask, RemoteTask
from ._settings import ClientSettings
from ._signatures import (
    AsyncPartial,
    AsyncWorkflow,
    AsyncWorkflowHandle,
    Partial,
    Workflow,
    WorkflowHandle,
    chord,
    group,
)
from ._tasks import remote

__all__ = [
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
]
