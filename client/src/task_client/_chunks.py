"""Chunks on the client side: many calls packed into one message, and its reply unpacked per call.

The wire format is described in `task_contracts.wire` (`chunk_task_name`). Shared by the sync and
async facades: no I/O here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from task_contracts import Contract

from ._errors import ContractMismatch, TaskError
from ._outcome import decode_outcome, remote_error

WireCall = tuple[list[Any], dict[str, Any]]


def chunk_arguments(calls: Sequence[WireCall]) -> list[Any]:
    """The positional arguments of a chunk message: one list of `[args, kwargs]` pairs."""
    return [[[args, kwargs] for args, kwargs in calls]]


def capture_outcome(contract: Contract[..., Any], task_id: str, record: dict[str, Any]) -> Any:
    """The call's validated value, or the `TaskError` it stands for (returned, not raised)."""
    try:
        return decode_outcome(contract, task_id, record)
    except TaskError as error:
        return error


def chunk_outcomes(contract: Contract[..., Any], task_id: str, record: dict[str, Any], count: int) -> list[Any]:
    """Each call's value or `TaskError`, in order, from a chunk message's ready record.

    A chunk refused as a whole (another contract version, a worker without chunk support, a
    time limit) gives every call of the chunk the same error.
    """
    if record.get("status") != "SUCCESS":
        shared = remote_error(contract.name, task_id, record)
        return [shared] * count
    items = record.get("result")
    if not isinstance(items, list) or len(items) != count:
        got = f"{len(items)} records" if isinstance(items, list) else type(items).__name__
        mismatch = ContractMismatch(
            f"{contract.name}: the worker answered a chunk of {count} calls with {got}",
            contract=contract.name,
            task_id=task_id,
        )
        return [mismatch] * count
    return [
        capture_outcome(contract, task_id, item) if isinstance(item, dict) else _malformed(contract, task_id, item)
        for item in items
    ]


def _malformed(contract: Contract[..., Any], task_id: str, item: Any) -> TaskError:
    return ContractMismatch(
        f"{contract.name}: the worker answered a chunk call with {item!r:.80}, not a result record",
        contract=contract.name,
        task_id=task_id,
    )
