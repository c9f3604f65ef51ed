"""Batches of calls of one contract (`map`, `submit_many`): no I/O here, shared by sync and async.

A batch validates every call before anything is published, plans its messages (chunks of many
calls, or one message per call), and turns the records that come back into one outcome per call,
in input order: the call's value, or the `TaskError` that call alone met.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Generic, TypeAlias, TypeVar

from task_contracts import ArgumentsError, Contract
from task_contracts.wire import CANCEL_HASH_HEADER, MAX_CHUNK_SIZE, chunk_task_name

from ._chunks import WireCall, capture_outcome, chunk_arguments, chunk_outcomes
from ._errors import BatchFailed, InvalidArguments, TaskError
from ._ids import new_id
from ._producer import Outgoing, call_headers
from ._schedule import Schedule

R = TypeVar("R")

#: One call of a batch: a tuple or list of positional arguments, or a mapping of named ones.
ArgSet: TypeAlias = Sequence[Any] | Mapping[str, Any]

#: Calls per chunk message when `map` is given no `chunk_size`. Measured with `make bench`: a worker
#: spends ~2-5 ms on each message whatever it carries and ~30 us on each tiny call, so 10,000 calls
#: finish in a fraction of a second from 100 up; 250 keeps each reply small (~10 KB) and still
#: spreads a large batch over many worker processes.
DEFAULT_CHUNK_SIZE = 250


def encode_calls(contract: Contract[..., Any], arg_sets: Iterable[ArgSet], first: int = 0) -> list[WireCall]:
    """Validate every call; raise one `InvalidArguments` naming the first bad item's index (from `first`)."""
    calls = []
    for index, arg_set in enumerate(arg_sets, start=first):
        if isinstance(arg_set, Mapping):
            args: Sequence[Any] = ()
            kwargs: Mapping[str, Any] = arg_set
        elif isinstance(arg_set, (tuple, list)):
            args, kwargs = arg_set, {}
        else:
            problem = (
                f"item {index}: expected a tuple or list of positional arguments or a mapping of named "
                f"arguments, got {type(arg_set).__name__}"
            )
            raise InvalidArguments(
                f"invalid batch for {contract.name}: {problem}", contract=contract.name, problems=[problem]
            )
        try:
            calls.append(contract.encode_arguments(args, kwargs))
        except ArgumentsError as error:
            raise InvalidArguments(
                f"item {index}: {error}",
                contract=contract.name,
                problems=[f"item {index}: {problem}" for problem in error.problems],
            ) from None
    return calls


def check_chunk_size(chunk_size: int | None) -> int:
    """The chunk size to use; `ValueError` unless it is an int between 1 and `MAX_CHUNK_SIZE`."""
    if chunk_size is None:
        return DEFAULT_CHUNK_SIZE
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or not 1 <= chunk_size <= MAX_CHUNK_SIZE:
        raise ValueError(f"chunk_size must be an int from 1 to {MAX_CHUNK_SIZE}, got {chunk_size!r}")
    return chunk_size


@dataclass(frozen=True, slots=True)
class BatchMessage:
    """One message of a batch: calls `first` to `first + count - 1`, chunked or alone."""

    task_id: str
    first: int
    count: int
    chunked: bool
    args: list[Any]
    kwargs: dict[str, Any]


class Batch(Generic[R]):
    """A validated batch of calls of one contract, planned into messages."""

    __slots__ = ("contract", "first", "messages", "size")

    def __init__(
        self, contract: Contract[..., R], arg_sets: Iterable[ArgSet], chunk_size: int | None, first: int = 0
    ) -> None:
        """`first`: the index of the first call in a longer stream of calls (for error messages)."""
        size = check_chunk_size(chunk_size)
        if contract.retry is not None or contract.rate_limit is not None:
            size = 1  # retries and rate limits apply per message, so each call travels alone
        calls = encode_calls(contract, arg_sets, first)
        self.contract = contract
        self.first = first
        self.size = len(calls)
        self.messages = _plan(calls, size)

    @property
    def task_ids(self) -> list[str]:
        return [message.task_id for message in self.messages]

    def outgoing(
        self, queue: str, schedule: Schedule | None = None, cancel_hash: Callable[[str], str] | None = None
    ) -> list[Outgoing]:
        """The messages as the producer publishes them, all with the same schedule; `cancel_hash`
        gives each message's `cancel_hash` header from its task id."""
        contract = self.contract
        eta, expires, priority = (schedule.eta, schedule.expires, schedule.priority) if schedule else (None,) * 3
        headers = call_headers(contract)
        chunk_name = chunk_task_name(contract.name)
        return [
            Outgoing(
                chunk_name if message.chunked else contract.name,
                message.args,
                message.kwargs,
                queue,
                message.task_id,
                headers if cancel_hash is None else {**headers, CANCEL_HASH_HEADER: cancel_hash(message.task_id)},
                # Every call in a chunk keeps the contract's bound on the worker.
                contract.timeout * message.count if message.chunked else None,
                eta,
                expires,
                priority,
            )
            for message in self.messages
        ]

    def outcomes(self, records: Sequence[dict[str, Any] | TaskError]) -> list[Any]:
        """One value or `TaskError` per call, in input order, from each message's ready record or error."""
        outcomes: list[Any] = []
        for message, record in zip(self.messages, records, strict=True):
            outcomes.extend(self.message_outcomes(message, record))
        return outcomes

    def message_outcomes(self, message: BatchMessage, record: dict[str, Any] | TaskError) -> list[Any]:
        """One value or `TaskError` per call of one message, in order."""
        if isinstance(record, TaskError):
            return [record] * message.count
        if message.chunked:
            return chunk_outcomes(self.contract, message.task_id, record, message.count)
        return [capture_outcome(self.contract, message.task_id, record)]

    def finish(self, outcomes: list[Any], return_exceptions: bool) -> list[Any]:
        """The outcomes as `map` returns them: raise `BatchFailed` if any call failed, unless asked not to."""
        if return_exceptions:
            return outcomes
        failed = [(index, item) for index, item in enumerate(outcomes) if isinstance(item, TaskError)]
        if not failed:
            return outcomes
        kinds: dict[str, int] = {}
        for _index, error in failed:
            kinds[type(error).__name__] = kinds.get(type(error).__name__, 0) + 1
        summary = ", ".join(f"{count} {kind}" for kind, count in kinds.items())
        first_index, first = failed[0]
        raise BatchFailed(
            f"{self.contract.name}: {len(failed)} of {len(outcomes)} calls failed ({summary}); "
            f"first, item {first_index}: {first}",
            contract=self.contract.name,
            outcomes=outcomes,
        )


def _plan(calls: list[WireCall], chunk_size: int) -> list[BatchMessage]:
    if chunk_size == 1:
        return [BatchMessage(new_id(), index, 1, False, args, kwargs) for index, (args, kwargs) in enumerate(calls)]
    # Even chunks: 260 calls by 250 make two messages of 130, not 250 and 10.
    count = math.ceil(len(calls) / chunk_size)
    messages = []
    first = 0
    for number in range(count):
        size = (len(calls) - first) // (count - number)
        part = calls[first : first + size]
        messages.append(BatchMessage(new_id(), first, size, True, chunk_arguments(part), {}))
        first += size
    return messages


def when_all_done(futures: Sequence[Future[Any]], callback: Callable[[], None]) -> None:
    """Call `callback` once, in whichever thread finishes the last future (at once if none)."""
    if not futures:
        callback()
        return
    remaining = len(futures)
    lock = threading.Lock()

    def one_done(_future: Future[Any]) -> None:
        nonlocal remaining
        with lock:
            remaining -= 1
            last = remaining == 0
        if last:
            callback()

    for future in futures:
        future.add_done_callback(one_done)
