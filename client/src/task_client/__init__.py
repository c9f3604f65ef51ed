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

__all__ = [
    "AsyncPartial",
    "AsyncRemoteTask",
    "AsyncTaskClient",
    "AsyncTaskHandle",
    "AsyncWorkflow",
    "AsyncWorkflowHandle",
    "BatchFailed",
    "BrokerUnavailable",
    "ClientSettings",
    "ContractMismatch",
    "InvalidArguments",
    "OutcomeUnknown",
    "Partial",
    "Progress",
    "RemoteTask",
    "TaskClient",
    "TaskError",
    "TaskFailed",
    "TaskHandle",
    "TaskTimeout",
    "UnknownTask",
    "WorkerInfo",
    "Workflow",
    "WorkflowHandle",
    "chord",
    "group",
]
