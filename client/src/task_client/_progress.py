"""Progress reports a running task publishes, as the client sees them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from task_contracts.wire import PROGRESS_DONE, PROGRESS_MESSAGE, PROGRESS_STATE, PROGRESS_TOTAL


@dataclass(frozen=True)
class Progress:
    """The latest progress a task reported: `done` of `total` (None if unknown), and a message."""

    done: float
    total: float | None
    message: str = ""

    @property
    def fraction(self) -> float | None:
        """`done / total` between 0 and 1, or None when the total is unknown or zero."""
        if not self.total:
            return None
        return max(0.0, min(1.0, self.done / self.total))


def progress_from_record(record: dict[str, Any] | None) -> Progress | None:
    """The report in a PROGRESS record; None for any other record or a malformed report."""
    if record is None or record.get("status") != PROGRESS_STATE:
        return None
    meta = record.get("result")
    if not isinstance(meta, dict):
        return None
    done, total, message = meta.get(PROGRESS_DONE), meta.get(PROGRESS_TOTAL), meta.get(PROGRESS_MESSAGE)
    if not isinstance(done, (int, float)) or isinstance(done, bool):
        return None
    if not (total is None or _is_number(total)):
        return None
    return Progress(done=done, total=total, message=message if isinstance(message, str) else "")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
