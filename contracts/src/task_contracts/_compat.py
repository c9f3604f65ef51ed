"""Which calls made with another shape of a contract still run: the rules applied on the worker.

A caller sends the shape of the contract it was built with (`Contract.shape`, carried in the
`contract_shape` header, see `task_contracts.wire`). The worker binds the call to the caller's
parameter names, then refuses only what actually breaks this call: a parameter it does not know
that the call uses, a parameter it requires that the caller's contract lacks, or a value the
worker's (changed) type refuses. Everything else runs: an older caller's call gets the worker's
defaults for parameters it did not send, a newer caller's call that uses only what the worker
knows runs as usual. `task-contracts diff` classifies the same changes ahead of a deploy.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import typing
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import pydantic

from ._errors import ArgumentsError, IncompatibleCall

if TYPE_CHECKING:
    from ._contract import Contract

#: Keys of the shape mapping (the `contract_shape` header's value).
SHAPE_VERSION = "version"
SHAPE_PARAMETERS = "parameters"
#: Only in what a worker reports it serves (not in the header): the parameters without a default.
SHAPE_REQUIRED = "required"


class ShapedParameter(NamedTuple):
    """One parameter as the caller declared it: name, type as written, digest of its JSON Schema."""

    name: str
    text: str
    digest: str


def type_text(annotation: Any) -> str:
    """A type as a Python reader would write it: `int`, `list[int]`, `int | None`."""
    if isinstance(annotation, type) and not typing.get_args(annotation):
        return annotation.__name__
    return repr(annotation).replace("typing.", "")


def type_digest(annotation: Any) -> str:
    """8 hex digits of the type's canonical JSON Schema: equal on both sides iff the type agrees."""
    schema = pydantic.TypeAdapter(annotation).json_schema()
    canonical = json.dumps(schema, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:8]


def call_shape(contract: Contract[..., Any]) -> dict[str, Any]:
    """The compact shape a caller sends with every call, built once per contract."""
    return {
        SHAPE_VERSION: contract.version,
        SHAPE_PARAMETERS: [
            [param.name, type_text(param.annotation), type_digest(param.annotation)] for param in contract.parameters
        ],
    }


#: The last shape read and what it read as: the calls of a chunk share their message's shape
#: object, so each call after the first skips reading it (a third of a call's validation, callgrind).
#: Held, so that no other object can take its id meanwhile.
_last_read: tuple[Any, tuple[int, tuple[ShapedParameter, ...]]] | None = None


def read_shape(contract_name: str, shape: Any) -> tuple[int, tuple[ShapedParameter, ...]]:
    """The version and parameters of a received shape; `ArgumentsError` if it is malformed."""
    global _last_read
    last = _last_read
    if last is not None and last[0] is shape:
        return last[1]
    try:
        version = shape[SHAPE_VERSION]
        parameters = tuple(ShapedParameter(*(str(part) for part in item)) for item in shape[SHAPE_PARAMETERS])
        if not isinstance(version, int):
            raise TypeError(version)
    except (KeyError, TypeError, ValueError):
        raise ArgumentsError(contract_name, [f"malformed contract_shape header: {shape!r:.120}"]) from None
    read = (version, parameters)
    _last_read = (shape, read)
    return read


#: Each contract's own shape as read, and its parameters by name, by the contract's id (the
#: contract held, so that no other object takes its id): made once, on its first call.
_own_reads: dict[int, tuple[Any, tuple[int, tuple[ShapedParameter, ...]], dict[str, inspect.Parameter]]] = {}


def own_reading(
    contract: Contract[..., Any],
) -> tuple[tuple[int, tuple[ShapedParameter, ...]], dict[str, inspect.Parameter]]:
    """The contract's own shape as `read_shape` reads it, and its parameters by name."""
    own = _own_reads.get(id(contract))
    if own is None:
        parameters = {param.name: param for param in contract.parameters}
        own = _own_reads[id(contract)] = (contract, read_shape(contract.name, contract.shape), parameters)
    return own[1], own[2]


def accept_shaped_call(
    contract: Contract[..., Any], args: Sequence[Any], kwargs: Mapping[str, Any], shape: Any
) -> dict[str, Any]:
    """The call's typed values; `IncompatibleCall` naming each difference that breaks it, or
    `ArgumentsError` for values that are simply invalid."""
    name = contract.name
    own_read, ours = own_reading(contract)
    # A caller of the same contract sends a shape equal to its own, which reads as the contract's
    # own (reading it was a third of a call's validation, callgrind). Equal, it is all text but an
    # integer version: only a version of another type (True, 1.0) compares equal and reads otherwise.
    if shape == contract.shape and type(shape[SHAPE_VERSION]) is int:
        version, caller = own_read
    else:
        version, caller = read_shape(name, shape)
    if version != contract.version:
        raise IncompatibleCall(
            name, [f"the caller's contract is version {version}, this worker serves version {contract.version}"]
        )
    kinds = contract._plain_types
    if caller is own_read[1] and kinds is not None and not kwargs and len(args) == len(kinds):
        # Hot path (measured): the caller's own shape, every parameter given by position, each of
        # exactly its plain int, str or bool type: validation returns the values as given (as the
        # client's `encode_arguments` takes them), where pydantic-core's code is cold on every call.
        for value, kind in zip(args, kinds, strict=True):
            if type(value) is not kind:
                break
        else:
            return dict(zip(contract._positional, args, strict=True))
    caller_names = [param.name for param in caller]
    if len(args) > len(caller_names):
        raise ArgumentsError(name, [f"takes {len(caller_names)} positional arguments but {len(args)} were given"])
    bound = dict(zip(caller_names, args, strict=False))
    for key, value in kwargs.items():
        if key in bound:
            raise ArgumentsError(name, [f"{key}: given both by position and by name"])
        bound[key] = value
    problems = [f"parameter {key!r} is not known to this worker" for key in bound if key not in ours]
    for param in contract.parameters:
        if param.default is not inspect.Parameter.empty or param.name in bound:
            continue
        if param.name in caller_names:
            # Our clients validate before publishing, so the caller's contract has a default for it.
            problems.append(f"parameter {param.name!r} is required by this worker and the call leaves it out")
        else:
            problems.append(f"parameter {param.name!r} is required by this worker and unknown to the caller's contract")
    if problems:
        raise IncompatibleCall(name, problems)
    values, invalid = contract.validation_problems(bound)
    if not invalid:
        return values
    # A value our type refuses is the caller's mistake when both declare the same type, and the
    # contract change's when they do not: then name the change, as `task-contracts diff` would.
    theirs = {param.name: param for param in caller}
    mine = {item[0]: ShapedParameter(*item) for item in contract.shape[SHAPE_PARAMETERS]}
    changed: dict[str, str] = {}
    plain: list[str] = []
    for field, line in invalid:
        caller_param, own = theirs.get(field), mine.get(field)
        if caller_param is not None and own is not None and caller_param.digest != own.digest:
            changed.setdefault(field, f"{field} changed from {caller_param.text} to {own.text} ({line})")
        else:
            plain.append(line)
    if changed:
        raise IncompatibleCall(name, [*changed.values(), *plain])
    raise ArgumentsError(name, plain)


def describe_served(contract: Contract[..., Any]) -> dict[str, Any]:
    """What a worker reports it serves: the call shape plus the parameters it requires."""
    required = [param.name for param in contract.parameters if param.default is inspect.Parameter.empty]
    return {**contract.shape, SHAPE_REQUIRED: required}


class ServedDifferences(NamedTuple):
    """How a worker's contract differs from the caller's: `breaking` differences refuse every call
    (or calls of every kind); `at_risk` ones, compatible as `task-contracts diff` says, refuse only
    the calls that use what the worker lacks (a new optional parameter passed)."""

    breaking: list[str]
    at_risk: list[str]


def served_differences(contract: Contract[..., Any], served: Any) -> ServedDifferences:
    """How a worker serving `served` (see `describe_served`) differs from calls made with
    `contract`; both lists empty when every valid call runs there, whatever the fingerprints say."""
    try:
        version, theirs = read_shape(contract.name, served)
        required = {str(name) for name in served[SHAPE_REQUIRED]}
    except (ArgumentsError, KeyError, TypeError):
        return ServedDifferences([f"the worker reports an unreadable shape: {served!r:.120}"], [])
    if version != contract.version:
        return ServedDifferences(
            [f"the worker serves version {version}, this client calls version {contract.version}"], []
        )
    served_by_name = {param.name: param for param in theirs}
    mine = [ShapedParameter(*item) for item in contract.shape[SHAPE_PARAMETERS]]
    own_defaults = {p.name for p in contract.parameters if p.default is not inspect.Parameter.empty}
    breaking: list[str] = []
    at_risk: list[str] = []
    for param in mine:
        other = served_by_name.get(param.name)
        if other is None and param.name in own_defaults:
            at_risk.append(f"parameter {param.name!r} is not known to the worker: calls that pass it are refused")
        elif other is None:
            breaking.append(f"parameter {param.name!r} is not known to the worker: every call passes it")
        elif other.digest != param.digest:
            breaking.append(f"{param.name} is {other.text} on the worker, {param.text} here")
    for name in sorted(required):
        if name not in {param.name for param in mine}:
            breaking.append(f"parameter {name!r} is required by the worker and unknown to this client")
        elif name in own_defaults:
            at_risk.append(f"parameter {name!r} is required by the worker: calls that leave it out are refused")
    return ServedDifferences(breaking, at_risk)


# -- the rules, as `task-contracts diff` classifies a change ahead of a deploy ----------------------

OLD_CLIENTS = "old clients"
NEW_CLIENTS = "new clients"
QUEUED = "queued messages"


class Rule(NamedTuple):
    """One kind of contract change and whom it breaks (nobody: compatible)."""

    id: str
    breaks_for: tuple[str, ...]

    @property
    def compatible(self) -> bool:
        return not self.breaks_for

    @property
    def verdict(self) -> str:
        return "compatible" if self.compatible else "breaking for " + ", ".join(self.breaks_for)


_ALL = (OLD_CLIENTS, NEW_CLIENTS, QUEUED)
_OLD = (OLD_CLIENTS, QUEUED)

#: Every rule of the table in the compatibility docs, in its order (a test keeps the two equal).
RULES: dict[str, Rule] = {
    rule.id: rule
    for rule in (
        Rule("parameter-added-optional", ()),
        Rule("parameter-added-required", _ALL),
        Rule("parameter-removed", _ALL),
        Rule("parameter-renamed", _ALL),
        Rule("parameter-type-widened", ()),
        Rule("parameter-type-narrowed", _OLD),
        Rule("parameter-type-changed", _ALL),
        Rule("parameter-default-changed", ()),
        Rule("parameter-default-added", ()),
        Rule("parameter-default-removed", _OLD),
        Rule("result-field-added-optional", ()),
        Rule("result-field-added-required", (NEW_CLIENTS,)),
        Rule("result-field-removed", _OLD),
        Rule("result-field-removed-optional", ()),
        Rule("result-type-widened", _OLD),
        Rule("result-type-narrowed", (NEW_CLIENTS,)),
        Rule("result-type-changed", _ALL),
        Rule("queue-changed", _ALL),
        Rule("timeout-changed", ()),
        Rule("idempotency-changed", ()),
        Rule("event-loop-changed", ()),
        Rule("description-changed", ()),
        Rule("contract-added", ()),
        Rule("contract-removed", _OLD),
    )
}
