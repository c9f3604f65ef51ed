"""task-server: Celery workers that implement task contracts."""

from ._app import create_app
from ._errors import ContractMismatch, ImplementationError, InvalidArguments, InvalidResult, ServerError
from ._progress import report_progress
from ._registry import Implementation, discover, implements, signature_differences, verify
from ._settings import WorkerSettings

__all__ = [
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
]
