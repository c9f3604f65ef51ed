"""The two faces of workflows: `Workflow` and `Partial` (sync) and their asyncio twins.

They share the structure, validation, plan and reading of records (`_workflow`); they differ
only in how they wait. A workflow is data: composing one publishes nothing, calling or submitting
it publishes it once, with fresh task ids each time.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import functools
import threading
from collections.abc import Generator, Mapping
from typing import Any, Generic, TypeVar, overload

from ._cancel import CancelResult
from ._errors import ClientClosed, TaskError, TaskTimeout
from ._runtime import Runtime
from ._steps import TIMED_OUT, Blocking, Steps, Wait, run_async, run_sync
from ._watcher import READY_STATES, Record
from ._workflow import Call, Node, Plan, default_timeout, describe, make_chord, make_group, then

R = TypeVar("R")
R2 = TypeVar("R2")
R_co = TypeVar("R_co", covariant=True)
A_contra = TypeVar("A_contra", contravariant=True)


class _Run:
    """A published workflow being watched: the records of its links, as the watcher delivers them."""

    def __init__(self, runtime: Runtime, plan: Plan) -> None:
        self.runtime = runtime
        self.plan = plan
        self.records: dict[str, Record] = {}
        self.finished: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._lock = threading.Lock()
        self._failure: BaseException | None = None
        # Every link is watched, not only the last: a failing or cancelled link is known at once.
        self._futures = runtime.watcher.watch_many(plan.link_ids)
        for task_id, future in zip(plan.link_ids, self._futures, strict=True):
            future.add_done_callback(functools.partial(self._one_done, task_id))

    def _one_done(self, task_id: str, future: concurrent.futures.Future[Record]) -> None:
        if future.cancelled():
            return
        error = future.exception()
        with self._lock:
            if error is not None:
                self._failure = error
            else:
                self.records[task_id] = future.result()
            if error is None and not self.plan.finished(self.records):
                return
        with contextlib.suppress(concurrent.futures.InvalidStateError):  # already finished, or given up on
            self.finished.set_result(None)

    def outcome(self) -> Steps[Any]:
        self.stop_watching()
        if isinstance(self._failure, ClientClosed):
            raise self._failure
        if self._failure is not None:
            raise self.runtime.backend_unavailable(None, self.plan.task_id, self._failure)
        with self._lock:
            records = dict(self.records)
        if not self.plan.succeeded(records):
            # A later link's failure (a chain's propagated error, a chord's ChordError) may have
            # reached us before the failure that caused it: read every link once to name the first.
            records.update((yield from self._read_all()))
        return self.plan.outcome(records)

    def _read_all(self) -> Steps[dict[str, Record]]:
        link_ids = self.plan.link_ids
        try:
            stored = yield Wait(self.runtime.watcher.fetch_many(link_ids), self.runtime.read_bound)
        except ClientClosed:
            raise
        except Exception:
            return {}  # the records already delivered still name a link
        if stored is TIMED_OUT:
            return {}
        return {
            task_id: record
            for task_id, record in zip(link_ids, stored, strict=True)
            if record is not None and record.get("status") in READY_STATES
        }

    def timed_out(self, timeout: float) -> TaskError:
        self.stop_watching()
        if self.runtime.watcher.is_disconnected():
            return self.runtime.backend_unavailable(None, self.plan.task_id, self.runtime.watcher.last_error)
        return TaskTimeout(
            f"workflow {self.plan.description}: no result within {timeout:g} s (its links may still run; "
            "wait again with handle.result())",
            contract=None,
            task_id=self.plan.task_id,
            timeout=timeout,
        )

    def stop_watching(self) -> None:
        for task_id, future in zip(self.plan.link_ids, self._futures, strict=True):
            if not future.done():
                self.runtime.watcher.forget(task_id, future)


class _BaseWorkflowHandle(Generic[R]):
    """What sync and async workflow handles share: the run's identity, its links and how to wait."""

    __slots__ = ("_plan", "_runtime", "_timeout")

    def __init__(self, runtime: Runtime, plan: Plan, timeout: float) -> None:
        self._runtime = runtime
        self._plan = plan
        self._timeout = timeout

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._plan.description} {self.id}>"

    @property
    def id(self) -> str:
        """The task id of the link whose record holds the result (the last link of a chain, a chord's callback)."""
        return self._plan.task_id

    @property
    def link_ids(self) -> dict[str, str]:
        """Every link's task id by its position, e.g. `{"link 1 of 2 (math.add)": "..."}`."""
        return {link.label: link.task_id for link in self._plan.links}

    def _cancel_steps(self) -> Steps[dict[str, CancelResult]]:
        # The last links first: a worker finishing an earlier link then finds the next one cancelled.
        done: dict[str, CancelResult] = {}
        for link in reversed(self._plan.links):
            done[link.label] = yield from self._runtime.cancel(link.contract.name, link.task_id)
        return {link.label: done[link.label] for link in self._plan.links}

    def _result_steps(self, timeout: float | None) -> Steps[R]:
        bound = self._timeout if timeout is None else timeout
        run = _Run(self._runtime, self._plan)
        try:
            finished = yield Wait(run.finished, bound)
        except BaseException:  # the caller gave up (cancelled, interrupted): stop watching
            run.stop_watching()
            raise
        if finished is TIMED_OUT:
            raise run.timed_out(bound)
        value: R = yield from run.outcome()
        return value


class WorkflowHandle(_BaseWorkflowHandle[R]):
    """A published workflow: `result(timeout=)` waits for its value.

    >>> handle = (client.add.s(4, 7) | client.mul.s(10)).submit()
    >>> handle.result(timeout=20)
    110
    """

    __slots__ = ()

    def result(self, timeout: float | None = None) -> R:
        """Wait at most `timeout` seconds (default: the sum of the links' bounds) for the workflow's value.

        Raises the error of the first link that failed (`TaskFailed` naming the link's position and
        contract), `TaskTimeout`, `BrokerUnavailable` or `ClientClosed`.
        """
        return run_sync(self._runtime.producer, self._result_steps(timeout))

    def cancel(self) -> dict[str, CancelResult]:
        """Cancel every link (as `TaskHandle.cancel`); return what that did to each, by position.

        Links not started never run, and waiters on the workflow get `TaskCancelled` (naming the
        first cancelled link) at once.
        """
        return run_sync(self._runtime.producer, self._cancel_steps())


class AsyncWorkflowHandle(_BaseWorkflowHandle[R]):
    """A published workflow, awaited: `await handle` or `await handle.result(timeout=20)`."""

    __slots__ = ()

    def __await__(self) -> Generator[Any, None, R]:
        return self.result().__await__()

    async def result(self, timeout: float | None = None) -> R:
        """As `WorkflowHandle.result`, without holding a thread while waiting."""
        return await run_async(self._runtime.producer, self._result_steps(timeout))

    async def cancel(self) -> dict[str, CancelResult]:
        """Cancel every link, as `WorkflowHandle.cancel`."""
        return await run_async(self._runtime.producer, self._cancel_steps())


class _BaseWorkflow(Generic[R_co]):
    __slots__ = ("_node", "_runtime")

    def __init__(self, runtime: Runtime, node: Node) -> None:
        self._runtime = runtime
        self._node = node

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {describe(self._node)}>"

    @property
    def timeout(self) -> float:
        """The default bound on the whole workflow: the sum of its links' bounds."""
        return default_timeout(self._node)

    def _submit_steps(self) -> Steps[Plan]:
        tracing = self._runtime.tracing
        if tracing is None:
            plan: Plan = yield Blocking(functools.partial(self._publish, {}))
        else:
            attributes = {"task_sdk.workflow": describe(self._node)}
            plan = yield from tracing.around("send workflow", attributes, self._publish_steps)
        return plan

    def _publish_steps(self, headers: Mapping[str, str]) -> Steps[Plan]:
        plan: Plan = yield Blocking(functools.partial(self._publish, headers))
        return plan

    def _call_steps(self, timeout: float | None) -> Steps[Any]:
        plan = yield from self._submit_steps()
        handle: _BaseWorkflowHandle[Any] = _BaseWorkflowHandle(self._runtime, plan, self.timeout)
        return (yield from handle._result_steps(timeout))

    def _publish(self, headers: Mapping[str, str]) -> Plan:
        if self._runtime.closed:
            raise ClientClosed("the client is closed")
        plan = Plan(self._node, self._runtime.canvas.app, headers)
        self._runtime.canvas.publish(plan.canvas, what=f"workflow {plan.description}")
        return plan


class Workflow(_BaseWorkflow[R_co]):
    """A complete workflow: a call (`client.add.s(4, 7)`), a chain, a group or a chord.

    >>> (client.add.s(4, 7) | client.mul.s(10))()
    110
    """

    __slots__ = ()

    def __or__(self, other: Partial[R_co, R2]) -> Workflow[R2]:
        """Chain: this workflow's result becomes `other`'s first argument (a group's list makes a chord)."""
        if not isinstance(other, Partial):
            return NotImplemented
        return Workflow(self._runtime, then(self._node, other._call))

    def __call__(self, *, timeout: float | None = None) -> R_co:
        """Publish and wait at most `timeout` seconds (default `self.timeout`) for the value."""
        value: R_co = run_sync(self._runtime.producer, self._call_steps(timeout))
        return value

    def submit(self) -> WorkflowHandle[R_co]:
        """Validate and publish the workflow now; return its handle without waiting."""
        plan = run_sync(self._runtime.producer, self._submit_steps())
        return WorkflowHandle(self._runtime, plan, self.timeout)


class AsyncWorkflow(_BaseWorkflow[R_co]):
    """A complete workflow for asyncio: `await workflow()`; `await workflow.submit()` returns an awaitable handle."""

    __slots__ = ()

    def __or__(self, other: AsyncPartial[R_co, R2]) -> AsyncWorkflow[R2]:
        """Chain: this workflow's result becomes `other`'s first argument (a group's list makes a chord)."""
        if not isinstance(other, AsyncPartial):
            return NotImplemented
        return AsyncWorkflow(self._runtime, then(self._node, other._call))

    async def __call__(self, *, timeout: float | None = None) -> R_co:
        """Publish (from the loop's executor) and wait at most `timeout` seconds for the value."""
        value: R_co = await run_async(self._runtime.producer, self._call_steps(timeout))
        return value

    async def submit(self) -> AsyncWorkflowHandle[R_co]:
        """Validate and publish the workflow (from the loop's executor); return an awaitable handle."""
        plan = await run_async(self._runtime.producer, self._submit_steps())
        return AsyncWorkflowHandle(self._runtime, plan, self.timeout)


class Partial(Generic[A_contra, R_co]):
    """A call missing its first parameter, filled by the previous result: `client.mul.s(10)`."""

    __slots__ = ("_call", "_runtime")

    def __init__(self, runtime: Runtime, call: Call) -> None:
        self._runtime = runtime
        self._call = call

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {describe(self._call)}>"


class AsyncPartial(Partial[A_contra, R_co]):
    """`Partial` for asyncio workflows: `client.aio.mul.s(10)`."""

    __slots__ = ()


@overload
def group(*members: Workflow[R]) -> Workflow[list[R]]: ...
@overload
def group(*members: AsyncWorkflow[R]) -> AsyncWorkflow[list[R]]: ...
def group(*members: Workflow[R] | AsyncWorkflow[R]) -> Workflow[list[R]] | AsyncWorkflow[list[R]]:
    """Run workflows side by side; the result is the list of their results, in input order (Celery's `group`).

    >>> group(client.add.s(1, 1), client.add.s(2, 2))()
    [2, 4]
    """
    kind = _one_kind(members)
    node = make_group([member._node for member in members])
    if kind is AsyncWorkflow:
        return AsyncWorkflow(members[0]._runtime, node)
    return Workflow(members[0]._runtime, node)


@overload
def chord(header: Workflow[list[R]], body: Partial[list[R], R2]) -> Workflow[R2]: ...
@overload
def chord(header: AsyncWorkflow[list[R]], body: AsyncPartial[list[R], R2]) -> AsyncWorkflow[R2]: ...
def chord(
    header: Workflow[list[R]] | AsyncWorkflow[list[R]], body: Partial[list[R], R2]
) -> Workflow[R2] | AsyncWorkflow[R2]:
    """Run a group, then `body` with the list of its results first (Celery's `chord`; same as `group | body`).

    >>> chord(group(client.add.s(1, 1), client.add.s(2, 2)), client.xsum.s())()
    6
    """
    asynchronous = _one_kind([header]) is AsyncWorkflow
    if asynchronous != isinstance(body, AsyncPartial):
        raise TypeError("a chord's header and callback must both come from client or both from client.aio")
    node = make_chord(header._node, body._call)
    return AsyncWorkflow(header._runtime, node) if asynchronous else Workflow(header._runtime, node)


def _one_kind(members: Any) -> Any:
    if not members:
        raise TypeError("a group needs at least one workflow")
    for index, member in enumerate(members, 1):
        if not isinstance(member, _BaseWorkflow):
            shown = repr(member)
            raise TypeError(f"group item {index}: expected a complete call or chain, got {shown}")
    kinds = {type(member) for member in members}
    if len(kinds) > 1:
        names = sorted(kind.__name__ for kind in kinds)
        raise TypeError(f"expected workflows all from client or all from client.aio, got {names}")
    return kinds.pop()
