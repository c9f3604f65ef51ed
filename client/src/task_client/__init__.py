"""task-client: call task contracts by name through Celery, typed and bounded."""

from ._aio import AsyncRemoteTask, AsyncTaskClient, AsyncTaskHandle
from ._cancel import CancelResult
from ._client import TaskClient
from ._errors import (
    BatchFailed,
    BrokerUnavailable,
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
    "CancelResult",
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
]
