"""Workflows: typed signatures composed by wire name into chains, groups and chords, run by the workers.

`client.add.s(4, 7)` is a complete call (`Workflow[int]`); `client.mul.s(10)` leaves out its first
parameter (`Partial[int, int]`), which the previous result fills, as with Celery's partial
signatures. `|` chains them, `group(...)` runs workflows side by side and returns their results in
input order, `chord(group, callback)` feeds that list to the callback. Everything is validated
before anything is published; the workflow then travels as Celery canvas messages (see `_canvas`),
and the client only waits for the records, as for any call.

This module holds what sync and async workflows share: the structure, the plan of one run (fresh
task ids, Celery canvas, the label of every link) and the reading of the records. `_workflows`
holds the two faces, which differ only in how they wait.
"""

from __future__ import annotations

import inspect
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

from celery import Celery
from celery import chain as celery_chain
from celery import chord as celery_chord
from celery import group as celery_group
from celery.canvas import Signature as CelerySignature

from task_contracts import ArgumentsError, Contract

from ._errors import InvalidArguments, TaskError
from ._outcome import decode_outcome, remote_error
from ._producer import call_headers
from ._watcher import READY_STATES, Record


@dataclass(frozen=True)
class Call:
    """One task message: a contract with validated wire arguments; `partial` when the previous result comes first."""

    contract: Contract[..., Any]
    args: tuple[Any, ...]
    kwargs: Mapping[str, Any]
    queue: str
    timeout: float
    partial: bool


@dataclass(frozen=True)
class Chain:
    steps: tuple[Node, ...]  # a complete first step, then partial calls


@dataclass(frozen=True)
class Group:
    members: tuple[Node, ...]  # complete calls or chains


@dataclass(frozen=True)
class Chord:
    header: Group
    body: Call  # partial: the header's results, as a list, come first


Node: TypeAlias = Call | Chain | Group | Chord


def make_call(
    contract: Contract[..., Any], args: Sequence[Any], kwargs: Mapping[str, Any], queue: str, timeout: float
) -> Call:
    """A complete call if every required parameter is given, else a partial one missing its first.

    `InvalidArguments` names every problem, before anything is published.
    """
    try:
        bound: dict[str, Any] | None = contract.bind(args, kwargs)
    except ArgumentsError:
        bound = None
    required = [p.name for p in contract.parameters if p.default is inspect.Parameter.empty]
    partial = bound is None or any(name not in bound for name in required)
    try:
        if partial:
            wire_args, wire_kwargs = contract.encode_partial(args, kwargs)
        else:
            wire_args, wire_kwargs = contract.encode_arguments(args, kwargs)
    except ArgumentsError as error:
        raise InvalidArguments(str(error), contract=contract.name, problems=error.problems) from None
    return Call(contract, tuple(wire_args), wire_kwargs, queue, timeout, partial)


def then(node: Node, call: Call) -> Node:
    """`node | call`: the previous result feeds `call`'s first parameter; a group followed by a call is a chord."""
    if not isinstance(call, Call) or not call.partial:
        raise TypeError("a workflow can only be followed by a partial signature, e.g. client.mul.s(10)")
    position = len(node.steps) + 1 if isinstance(node, Chain) else 2
    check_feeds(node, call, f"link {position} ({call.contract.name})")
    if isinstance(node, Group):
        return Chord(node, call)
    if isinstance(node, Chain):
        return Chain((*node.steps, call))
    return Chain((node, call))


def make_group(members: Sequence[Node]) -> Group:
    for index, member in enumerate(members, 1):
        if isinstance(member, Group) or (isinstance(member, Call) and member.partial):
            raise TypeError(f"group item {index}: expected a complete call or chain, got {describe(member)}")
    if not members:
        raise TypeError("a group needs at least one workflow")
    return Group(tuple(members))


def make_chord(header: Node, body: Call) -> Chord:
    if not isinstance(header, Group):
        raise TypeError(f"a chord's header must be a group, got {describe(header)}")
    chord = then(header, body)
    assert isinstance(chord, Chord)
    return chord


def describe(node: Node) -> str:
    """A short human description: `math.add(4, 7) | math.mul(_, 10)`."""
    if isinstance(node, Call):
        shown = [repr(a) for a in node.args] + [f"{k}={v!r}" for k, v in node.kwargs.items()]
        if node.partial:
            shown.insert(0, "_")
        return f"{node.contract.name}({', '.join(shown)})"
    if isinstance(node, Chain):
        return " | ".join(describe(step) for step in node.steps)
    if isinstance(node, Group):
        return f"group({', '.join(describe(member) for member in node.members)})"
    return f"chord({describe(node.header)}, {describe(node.body)})"


def default_timeout(node: Node) -> float:
    """The bound of a whole workflow: as if every link ran one after another at its own bound."""
    if isinstance(node, Call):
        return node.timeout
    if isinstance(node, Chain):
        return sum(default_timeout(step) for step in node.steps)
    if isinstance(node, Group):
        return sum(default_timeout(member) for member in node.members)
    return default_timeout(node.header) + node.body.timeout


# -- feeding one link into the next ---------------------------------------------
def check_feeds(node: Node, call: Call, label: str) -> None:
    """`InvalidArguments` if the previous result surely cannot be the first parameter of `call`.

    Compared by JSON Schema type where both sides declare one (an integer feeds a number); anything
    finer is left to the worker, which validates every link's arguments.
    """
    produced = _result_types(node)
    parameter = call.contract.parameters[0]
    wanted = _schema_types(call.contract.arguments_schema().get("properties", {}).get(parameter.name, {}))
    if produced is None or wanted is None:
        return
    if any(kind in wanted or (kind == "integer" and "number" in wanted) for kind in produced):
        return
    problem = (
        f"{parameter.name}: the previous result ({'/'.join(sorted(produced))}) cannot be this parameter "
        f"({'/'.join(sorted(wanted))})"
    )
    raise InvalidArguments(f"{label}: {problem}", contract=call.contract.name, problems=[problem])


def _result_types(node: Node) -> set[str] | None:
    if isinstance(node, Call):
        return _schema_types(node.contract.result_schema())
    if isinstance(node, Chain):
        return _result_types(node.steps[-1])
    if isinstance(node, Group):
        return {"array"}
    return _result_types(node.body)


def _schema_types(schema: Mapping[str, Any]) -> set[str] | None:
    """The JSON types a schema allows, or None when it does not say plainly (refs, any)."""
    kind = schema.get("type")
    if isinstance(kind, str):
        return {kind}
    if isinstance(kind, list):
        return {str(item) for item in kind}
    options = schema.get("anyOf")
    if isinstance(options, list):
        kinds: set[str] = set()
        for option in options:
            found = _schema_types(option)
            if found is None:
                return None
            kinds |= found
        return kinds
    return None


# -- one run ----------------------------------------------------------------------
@dataclass(frozen=True)
class Link:
    """One task message of a run: where it stands in the workflow, its contract and task id."""

    label: str
    contract: Contract[..., Any]
    task_id: str


class Plan:
    """One run of a workflow: fresh task ids, the Celery canvas that carries it, and how to read its records."""

    def __init__(self, node: Node, app: Celery, headers: Mapping[str, str] | None = None) -> None:
        self.links: list[Link] = []
        self.headers = headers or {}  # on every link's message, besides the fingerprint (trace context)
        self.group = isinstance(node, Group)
        self.description = describe(node)
        if isinstance(node, Group):
            built = [
                self._build(member, app, f"item {index} of {len(node.members)}")
                for index, member in enumerate(node.members, 1)
            ]
            self.canvas: Any = celery_group(*(canvas for canvas, _ in built), app=app)
            self.finals = [final for _, final in built]
        else:
            self.canvas, final = self._build(node, app, "")
            self.finals = [final]

    @property
    def task_id(self) -> str:
        """The id of the run: its last link's task id (Celery's convention for a chain); a group's first item's."""
        return self.finals[0].task_id

    @property
    def link_ids(self) -> list[str]:
        return [link.task_id for link in self.links]

    def finished(self, records: Mapping[str, Record]) -> bool:
        """True once every final link is ready, or any link has failed (its error is then known)."""
        if any(record.get("status") in READY_STATES - {"SUCCESS"} for record in records.values()):
            return True
        return all(final.task_id in records for final in self.finals)

    def succeeded(self, records: Mapping[str, Record]) -> bool:
        """True when no link's record is a failure (or a cancellation)."""
        return not any(record.get("status") in READY_STATES - {"SUCCESS"} for record in records.values())

    def outcome(self, records: Mapping[str, Record]) -> Any:
        """The workflow's value from ready records, or the error of the first link that failed, named."""
        for link in self.links:
            record = records.get(link.task_id)
            if record is not None and record.get("status") in READY_STATES - {"SUCCESS"}:
                raise self._named(remote_error(link.contract.name, link.task_id, record), link)
        values = []
        for final in self.finals:
            try:
                values.append(decode_outcome(final.contract, final.task_id, records[final.task_id]))
            except TaskError as error:
                raise self._named(error, final) from None
        return values if self.group else values[0]

    def _named(self, error: TaskError, link: Link) -> TaskError:
        error.args = (f"{link.label} of {self.description}: {error}",)
        return error

    def _build(self, node: Node, app: Celery, where: str) -> tuple[Any, Link]:
        """The Celery canvas of `node` and its final link (whose record holds its result)."""
        if isinstance(node, Call):
            label = f"{where} ({node.contract.name})" if where else node.contract.name
            link = Link(label, node.contract, str(uuid.uuid4()))
            self.links.append(link)
            options = {
                "queue": node.queue,
                "task_id": link.task_id,
                # Each link carries the caller's contract identity, so each worker checks it.
                "headers": {**call_headers(node.contract), **self.headers},
            }
            return CelerySignature(node.contract.name, list(node.args), dict(node.kwargs), options, app=app), link
        if isinstance(node, Chain):
            count = len(node.steps)
            built = [
                self._build(step, app, _join(where, f"link {index} of {count}"))
                for index, step in enumerate(node.steps, 1)
            ]
            return celery_chain(*(canvas for canvas, _ in built), app=app), built[-1][1]
        if isinstance(node, Group):
            count = len(node.members)
            built = [
                self._build(member, app, _join(where, f"item {i} of {count}"))
                for i, member in enumerate(node.members, 1)
            ]
            # A group inside a chain or chord: its result is the list, read from the chord's callback.
            return celery_group(*(canvas for canvas, _ in built), app=app), built[-1][1]
        header, _ = self._build(node.header, app, _join(where, "header"))
        body, final = self._build(node.body, app, _join(where, "callback"))
        return celery_chord(header, body, app=app), final


def _join(where: str, part: str) -> str:
    """Positions nest: `link 1 of 2, item 3 of 4`."""
    return f"{where}, {part}" if where else part
