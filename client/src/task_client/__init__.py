"""task-client: call task contracts by name through Celery, typed and bounded."""

from ._aio import AsyncRemoteTask, AsyncTaskClient, AsyncTaskHandle
from ._client import TaskClient
from ._errors import (
    BatchFailed,
    BrokerUnavailable,
    ContractMismatch,
    InvalidArguments,
    OutcomeUnknown,
    TaskError,
    TaskFailed,
    TaskTimeout,
    UnknownTask,
)
from ._handle import TaskHandle
from ._inspect import WorkerInfo
from ._progress import Progress
from ._remote import RemoteTask
from ._settings import ClientSettings

__all__ = [
    "AsyncRemoteTask",
    "AsyncTaskClient",
    "AsyncTaskHandle",
    "BatchFailed",
    "BrokerUnavailable",
    "ClientSettings",
    "ContractMismatch",
    "InvalidArguments",
    "OutcomeUnknown",
    "Progress",
    "RemoteTask",
    "TaskClient",
    "TaskError",
    "TaskFailed",
    "TaskHandle",
    "TaskTimeout",
    "UnknownTask",
    "WorkerInfo",
]
