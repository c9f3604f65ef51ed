"""task-client: call task contracts by name through Celery, typed and bounded."""

from ._cancel import CancelResult
from ._client import AsyncTaskClient, TaskClient
from ._errors import (
    BatchFailed,
    BrokerUnavailable,
    ClientClosed,
    ContractMismatch,
    InvalidArguments,
    OutcomeUnknown,
    TaskCancelled,
    TaskError,
    TaskExpired,
    TaskFailed,
    TaskTimeout,
    UnknownTask,
)
from ._handle import AsyncTaskHandle, TaskHandle
from ._inspect import WorkerInfo
from ._progress import Progress
from ._remote import AsyncRemoteTask, RemoteTask
from ._settings import ClientSettings
from ._tasks import remote

__all__ = [
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
]
