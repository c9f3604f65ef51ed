"""A contract: one remote task declared once, with everything both sides derive from it."""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import re
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Generic, ParamSpec, TypeVar

import pydantic

from ._compat import accept_shaped_call, call_shape, describe_served, served_differences, type_text
from ._errors import ArgumentsError, ContractDeclarationError, ResultError
from ._policy import DeclaredError, Retry, policy_problems
from .wire import VERSION_NAME_SEPARATOR

P = ParamSpec("P")
R = TypeVar("R")

_WIRE_NAME = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")
# `.v2`, `.v3` ... end the wire names of later major versions; a declared name never does.
_VERSION_SUFFIX = re.compile(r"\.v[0-9]+$")
_QUEUE_NAME = re.compile(r"^[A-Za-z0-9_.:-]+$")
_ALLOWED_KINDS = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)

#: A finished call's record is kept this many times its contract's timeout, unless the contract
#: says otherwise (`result_ttl=`)...
RESULT_TTL_TIMEOUTS = 10
#: ...and never less than this many seconds, so that `handle(task_id)` can re-attach to a call
#: for at least five minutes after it finished.
RESULT_TTL_FLOOR = 300.0


def _describe(error: pydantic.ValidationError) -> list[str]:
    return [problem for _, problem in _describe_by_field(error)]


def _describe_by_field(error: pydantic.ValidationError) -> list[tuple[str, str]]:
    """One `(top-level field, human-readable line)` per problem."""
    problems = []
    for item in error.errors(include_url=False):
        where = ".".join(str(part) for part in item["loc"]) or "value"
        field = str(item["loc"][0]) if item["loc"] else ""
        if item["type"] == "missing":
            problems.append((field, f"{where}: {item['msg']}"))
        else:
            problems.append((field, f"{where}: {item['msg']} (got {_shown(item.get('input'))})"))
    return problems


def _shown(value: Any, limit: int = 80) -> str:
    """`repr(value)`, cut visibly (`...`) past `limit` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class Contract(Generic[P, R]):
    """One remote task: wire name, typed signature, queue, time bound and idempotency.

    `cpu_bound=False` declares a task that holds no CPU for long (I/O or trivial work): a worker
    may then serve it from threads of its main process instead of a pool process, which saves a
    process hop per call but does not kill it at its timeout. `on_event_loop=True` (with
    `cpu_bound=False`) is the author's promise that every call returns within a millisecond and
    never waits on anything: a worker then runs its calls on its event loop itself, where one call
    that hangs stops that worker process from serving anything else. `result_ttl` is how long (seconds)
    a finished call's record stays in the result backend; by default `RESULT_TTL_TIMEOUTS` times
    the timeout, at least `RESULT_TTL_FLOOR`.

    Declare with the `contract` decorator; a contract is data, not callable code.
    Validators and schemas are compiled once, here, never per call.
    """

    __slots__ = (
        "_arguments_model",
        "_fingerprint",
        "_plain_result",
        "_plain_types",
        "_positional",
        "_result_adapter",
        "_shape",
        "base_name",
        "concurrency",
        "cpu_bound",
        "description",
        "idempotent",
        "interruptible",
        "name",
        "on_event_loop",
        "parameters",
        "queue",
        "raises",
        "rate_limit",
        "result_ttl",
        "result_type",
        "retry",
        "timeout",
        "version",
    )

    def __init__(
        self,
        stub: Callable[P, R],
        *,
        name: str,
        queue: str,
        timeout: float,
        idempotent: bool,
        version: int = 1,
        cpu_bound: bool = True,
        result_ttl: float | None = None,
        retry: Retry | None = None,
        raises: Sequence[type[DeclaredError]] = (),
        interruptible: bool = False,
        rate_limit: str | None = None,
        concurrency: int | None = None,
        on_event_loop: bool = False,
    ) -> None:
        if not _WIRE_NAME.match(name):
            raise ContractDeclarationError(f"wire name {name!r} must be dotted lowercase, like 'math.add'")
        if _VERSION_SUFFIX.search(name):
            raise ContractDeclarationError(f"{name}: declare a major version with version=N, not in the name")
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise ContractDeclarationError(f"{name}: version must be an integer from 1, got {version!r}")
        if not _QUEUE_NAME.match(queue):
            raise ContractDeclarationError(f"{name}: queue name {queue!r} is not a valid queue name")
        if not timeout > 0:
            raise ContractDeclarationError(f"{name}: timeout must be positive, got {timeout!r}")
        if result_ttl is not None and not result_ttl >= 1:
            raise ContractDeclarationError(f"{name}: result_ttl must be at least 1 second, got {result_ttl!r}")
        self.base_name = name
        self.version = version
        self.name = wire_name(name, version)
        self.queue = queue
        self.timeout = float(timeout)
        self.idempotent = idempotent
        self.cpu_bound = cpu_bound
        self.result_ttl = (
            float(result_ttl) if result_ttl is not None else max(RESULT_TTL_FLOOR, RESULT_TTL_TIMEOUTS * self.timeout)
        )
        raises = tuple(raises)
        problems = policy_problems(
            name, idempotent=idempotent, retry=retry, raises=raises, rate_limit=rate_limit, concurrency=concurrency
        )
        if interruptible and not cpu_bound:
            problems.append("interruptible needs the process pool (cpu_bound=True): a thread cannot be stopped")
        if on_event_loop and cpu_bound:
            problems.append("on_event_loop needs cpu_bound=False: only a call that never holds the CPU may run there")
        if problems:
            raise ContractDeclarationError(f"{name}: " + "; ".join(problems))
        self.retry = retry
        self.raises: tuple[type[DeclaredError], ...] = raises
        self.interruptible = bool(interruptible)
        self.on_event_loop = bool(on_event_loop)
        self.rate_limit = rate_limit
        self.concurrency = concurrency
        self.description = inspect.getdoc(stub) or ""
        self.parameters, self.result_type = _read_signature(name, stub)
        self._positional = tuple(p.name for p in self.parameters if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD)
        self._arguments_model = _arguments_model(name, self.parameters)
        self._plain_types = _plain_types(self._arguments_model, self.parameters)
        self._result_adapter: pydantic.TypeAdapter[R] = pydantic.TypeAdapter(self.result_type)
        # A plain int, str or bool result (`decode_result`): its compiled schema is that type alone.
        self._plain_result = _PLAIN_SCHEMAS.get(self._result_adapter.core_schema.get("type", ""))
        if set(self._result_adapter.core_schema) != {"type"}:
            self._plain_result = None
        self._fingerprint = _fingerprint(self.name, self.arguments_schema(), self.result_schema())
        self._shape = call_shape(self)

    def __repr__(self) -> str:
        return f"<Contract {self.name} {self.signature_text()} queue={self.queue!r}>"

    @property
    def fingerprint(self) -> str:
        """Hash of the wire name and the argument and result schemas; equal on both sides iff they agree."""
        return self._fingerprint

    @property
    def shape(self) -> Mapping[str, Any]:
        """What a caller sends in the `contract_shape` header (see `task_contracts.wire`): the major
        version and, per parameter in order, its name, type text and schema digest. Computed once."""
        return self._shape

    def served_shape(self) -> dict[str, Any]:
        """What a worker serving this contract reports to clients that ask (`task-client workers`):
        the call shape plus the names of the parameters it requires."""
        return describe_served(self)

    def problems_on_worker(self, served: Any) -> list[str]:
        """Why a worker reporting `served` (its `served_shape()`) would refuse the calls of this
        contract (breaking differences); empty when the differences are compatible or none."""
        return served_differences(self, served).breaking

    def risks_on_worker(self, served: Any) -> list[str]:
        """Which calls of this contract a worker reporting `served` would refuse although the
        difference is compatible (`task-contracts diff`): e.g. calls that pass a new optional parameter."""
        return served_differences(self, served).at_risk

    def summary(self) -> dict[str, Any]:
        """The contract's identity as JSON-ready data, for listings and exports."""
        return {
            "name": self.name,
            "base_name": self.base_name,
            "version": self.version,
            "signature": self.signature_text(),
            "description": self.description,
            "queue": self.queue,
            "timeout": self.timeout,
            "idempotent": self.idempotent,
            "fingerprint": self.fingerprint,
            **self._policies(),
        }

    def _policies(self) -> dict[str, Any]:
        # Only the declared ones, so a listing of a plain contract stays as short as before.
        declared = {
            "retry": self.retry.summary() if self.retry else None,
            "raises": [item.__name__ for item in self.raises] or None,
            "interruptible": self.interruptible or None,
            "rate_limit": self.rate_limit,
            "concurrency": self.concurrency,
            # Where a worker runs it: no part of the wire shape or fingerprint (callers see no difference).
            "on_event_loop": self.on_event_loop or None,
        }
        return {key: value for key, value in declared.items() if value is not None}

    def declared_error(self, type_name: str) -> type[DeclaredError] | None:
        """The declared error class stored under `type_name`, or None."""
        for item in self.raises:
            if item.__name__ == type_name:
                return item
        return None

    def signature_text(self) -> str:
        """The signature as a Python reader would write it, e.g. `(x: int, y: int) -> int`."""
        texts, star = [], False
        for param in self.parameters:
            if param.kind is inspect.Parameter.KEYWORD_ONLY and not star:
                texts.append("*")
                star = True
            texts.append(_param_text(param))
        params = ", ".join(texts)
        return f"({params}) -> {type_text(self.result_type)}"

    # -- arguments -------------------------------------------------------------
    def bind(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> dict[str, Any]:
        """Map positional and named arguments onto parameter names, without validating types."""
        if len(args) > len(self._positional):
            raise ArgumentsError(
                self.name,
                [f"takes {len(self._positional)} positional arguments but {len(args)} were given"],
            )
        bound = dict(zip(self._positional, args, strict=False))
        for key, value in kwargs.items():
            if key in bound:
                raise ArgumentsError(self.name, [f"{key}: given both by position and by name"])
            bound[key] = value
        return bound

    def validate_arguments(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> dict[str, Any]:
        """Validate a call; return the parameters as typed Python values."""
        model = self._validate_model(self.bind(args, kwargs))
        return {name: getattr(model, name) for name in type(model).model_fields}

    def accept_call(
        self, args: Sequence[Any], kwargs: Mapping[str, Any], shape: Mapping[str, Any] | None
    ) -> dict[str, Any]:
        """Validate a call as the worker receives it, made with the caller's `shape` of the contract.

        Without a shape (producers in other languages) it is `validate_arguments`. With one, positional
        values bind to the caller's parameter names, and only a difference that breaks this call is
        refused, with `IncompatibleCall` naming it; a parameter the caller did not send takes its default.
        """
        if shape is None:
            return self.validate_arguments(args, kwargs)
        return accept_shaped_call(self, args, kwargs, shape)

    def encode_arguments(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> tuple[list[Any], dict[str, Any]]:
        """Validate a call and return JSON-ready `(args, kwargs)` as they travel on the wire.

        Only the parameters the caller gave travel: the worker fills in its own defaults, so a
        worker that does not know a newer optional parameter still runs calls that leave it out.
        """
        kinds = self._plain_types
        if kinds is not None and not kwargs and len(args) == len(kinds):
            # Hot path (measured): every parameter given by position, each an int, str or bool
            # without constraints, each value of exactly that type: validation would return the
            # values as given, and they are their own JSON (`_plain_types`). 18 -> 3.5 us per call
            # in a sequential caller, where pydantic-core's code is cold after each wait.
            for value, kind in zip(args, kinds, strict=True):
                if type(value) is not kind:
                    break
            else:
                return list(args), {}
        model = self._validate_model(self.bind(args, kwargs))
        given = model.model_fields_set
        plain = model.model_dump(mode="json")
        wire_args = []
        for name in self._positional:
            if name not in given:
                break
            wire_args.append(plain.pop(name))
        return wire_args, {name: value for name, value in plain.items() if name in given}

    def _validate_model(self, bound: dict[str, Any]) -> pydantic.BaseModel:
        try:
            return self._arguments_model.model_validate(bound)
        except pydantic.ValidationError as error:
            raise ArgumentsError(self.name, _describe(error)) from None

    def validation_problems(self, bound: dict[str, Any]) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        """Typed values of bound arguments, and `(parameter, problem)` pairs (empty when valid)."""
        try:
            model = self._arguments_model.model_validate(bound)
        except pydantic.ValidationError as error:
            return {}, _describe_by_field(error)
        return {name: getattr(model, name) for name in type(model).model_fields}, []

    # -- result ----------------------------------------------------------------
    def encode_result(self, value: Any) -> Any:
        """Validate a returned value against the result type; return it JSON-ready."""
        if type(value) is self._plain_result:
            # Hot path (the worker's, as `decode_result` the caller's): a plain result of exactly its
            # type is what validation and its JSON dump return.
            return value
        try:
            return self._result_adapter.dump_python(self._result_adapter.validate_python(value), mode="json")
        except pydantic.ValidationError as error:
            raise ResultError(self.name, _describe(error)) from None

    def decode_result(self, value: Any) -> R:
        """Validate a JSON result from the wire into the declared result type."""
        if type(value) is self._plain_result:
            # Hot path: a plain result of exactly its type is what validation returns (as in
            # `encode_arguments`); 4 -> 1 us of a sequential caller's CPU after its record came.
            return value  # type: ignore[return-value]
        try:
            return self._result_adapter.validate_python(value)
        except pydantic.ValidationError as error:
            raise ResultError(self.name, _describe(error)) from None

    # -- schemas ---------------------------------------------------------------
    def arguments_schema(self) -> dict[str, Any]:
        """JSON Schema of the arguments, as an object keyed by parameter name."""
        return self._arguments_model.model_json_schema()

    def result_schema(self) -> dict[str, Any]:
        """JSON Schema of the result."""
        return self._result_adapter.json_schema()

    # -- partial calls ---------------------------------------------------------
    def encode_partial(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> tuple[list[Any], dict[str, Any]]:
        """Validate a call whose first positional parameter is left out, to be filled later with the
        previous result of a workflow (Celery's partial signature); return the rest as it travels."""
        if not self._positional:
            raise ArgumentsError(self.name, ["has no positional parameter for the previous result to fill"])
        first, rest = self._positional[0], self._positional[1:]
        if first in kwargs:
            raise ArgumentsError(self.name, [f"{first}: filled by the previous result; do not pass it"])
        if len(args) > len(rest):
            raise ArgumentsError(
                self.name, [f"takes {len(rest)} positional arguments after {first} but {len(args)} were given"]
            )
        bound = dict(zip(rest, args, strict=False))
        for key, value in kwargs.items():
            if key in bound:
                raise ArgumentsError(self.name, [f"{key}: given both by position and by name"])
            bound[key] = value
        try:
            model = _partial_model(self).model_validate(bound)
        except pydantic.ValidationError as error:
            raise ArgumentsError(self.name, _describe(error)) from None
        plain = model.model_dump(mode="json")
        return [plain.pop(name) for name in rest], plain


@functools.cache
def _partial_model(declared: Contract[..., Any]) -> type[pydantic.BaseModel]:
    """The arguments model without the first positional parameter, built once per contract when first needed."""
    return _arguments_model(declared.name + ".partial", declared.parameters[1:])


def contract(
    *,
    name: str,
    queue: str = "default",
    timeout: float = 30.0,
    idempotent: bool = False,
    cpu_bound: bool = True,
    result_ttl: float | None = None,
    version: int = 1,
    retry: Retry | None = None,
    raises: Sequence[type[DeclaredError]] = (),
    interruptible: bool = False,
    rate_limit: str | None = None,
    concurrency: int | None = None,
    on_event_loop: bool = False,
) -> Callable[[Callable[P, R]], Contract[P, R]]:
    """Declare a contract from a typed stub, never run, whose body is `raise NotImplementedError`
    (which `mypy --strict` accepts; a body of `...` is its `empty-body` error).

    `version` is the contract's major version: a breaking change is declared as a new version,
    served on the wire as `<name>.v<version>` beside the older ones (version 1 keeps the bare name).

    Run policies, applied by the worker: `retry` (a `Retry`, idempotent contracts only), `raises`
    (the `DeclaredError` types its implementation may raise, given back to callers by type),
    `interruptible` (a running call may be stopped by `cancel()`), `rate_limit` (Celery's
    per-worker limit, e.g. "10/s") and `concurrency` (at most this many running at once across
    all workers).

    `on_event_loop=True` (only with `cpu_bound=False`): the author promises every call returns within
    a millisecond and never blocks, and a worker runs its calls on its event loop, saving the hand-off
    to a thread. One call that hangs there stops the whole worker process: declare it only for code
    that cannot wait on anything (pure arithmetic on bounded input), never for I/O.

    >>> @contract(name="math.add", queue="math", timeout=10, idempotent=True, cpu_bound=False)
    ... def add(x: int, y: int) -> int:
    ...     "Add two integers."
    ...     raise NotImplementedError
    """

    def declare(stub: Callable[P, R]) -> Contract[P, R]:
        return Contract(
            stub,
            name=name,
            queue=queue,
            timeout=timeout,
            idempotent=idempotent,
            cpu_bound=cpu_bound,
            result_ttl=result_ttl,
            version=version,
            retry=retry,
            raises=raises,
            interruptible=interruptible,
            rate_limit=rate_limit,
            concurrency=concurrency,
            on_event_loop=on_event_loop,
        )

    return declare


def wire_name(name: str, version: int) -> str:
    """The name a major version of a contract is served under: `math.add`, `math.add.v2`, ..."""
    return name if version == 1 else f"{name}{VERSION_NAME_SEPARATOR}{version}"


def _read_signature(name: str, stub: Callable[..., Any]) -> tuple[tuple[inspect.Parameter, ...], Any]:
    signature = inspect.signature(stub)
    try:
        hints = typing.get_type_hints(stub, include_extras=True)
    except NameError as error:
        raise ContractDeclarationError(f"{name}: cannot resolve annotation: {error}") from error
    parameters = []
    for param in signature.parameters.values():
        if param.kind not in _ALLOWED_KINDS:
            raise ContractDeclarationError(
                f"{name}: parameter {param.name!r} is {param.kind.description}; contracts take named parameters only"
            )
        if param.name not in hints:
            raise ContractDeclarationError(f"{name}: parameter {param.name!r} has no type annotation")
        parameters.append(param.replace(annotation=hints[param.name]))
    if "return" not in hints:
        raise ContractDeclarationError(f"{name}: the result type is not annotated")
    return tuple(parameters), hints["return"]


def _arguments_model(name: str, parameters: Sequence[inspect.Parameter]) -> type[pydantic.BaseModel]:
    fields: dict[str, Any] = {
        p.name: (p.annotation, ... if p.default is inspect.Parameter.empty else p.default) for p in parameters
    }
    title = "".join(part.title() for part in re.split(r"[._]", name)) + "Arguments"
    return pydantic.create_model(  # type: ignore[call-overload,unused-ignore]
        title, __config__=pydantic.ConfigDict(extra="forbid"), **fields
    )


#: Core schemas that return a value of exactly this type unchanged, whose JSON form is the value itself.
_PLAIN_SCHEMAS: dict[str, type] = {"int": int, "str": str, "bool": bool}
#: The arguments model's own config: what `_arguments_model` sets, nothing that changes a value.
_PLAIN_CONFIG = {"extra_fields_behavior", "title"}


def _plain_types(model: type[pydantic.BaseModel], parameters: Sequence[inspect.Parameter]) -> tuple[type, ...] | None:
    """The type of each parameter when every one is positional and a plain int, str or bool (no
    default, constraint, validator or config), read from the model's compiled schema; else None.

    For such a contract, arguments all given by position and each of exactly its parameter's type
    are what validation and `model_dump(mode="json")` would return (`encode_arguments`); anything
    else (a bool for an int, a subclass, a missing or named argument) is validated as always.
    """
    if any(p.kind is not inspect.Parameter.POSITIONAL_OR_KEYWORD for p in parameters):
        return None
    schema: Any = model.__pydantic_core_schema__
    if schema.get("type") != "model" or not set(schema.get("config", {})) <= _PLAIN_CONFIG:
        return None
    fields = schema["schema"]
    if (
        fields.get("type") != "model-fields"
        or fields.get("computed_fields")
        or set(fields)
        - {
            "type",
            "fields",
            "computed_fields",
            "model_name",
        }
    ):
        return None
    kinds: list[type] = []
    for parameter in parameters:
        field = fields["fields"].get(parameter.name)
        if field is None or field.get("metadata") or set(field) - {"type", "schema", "metadata"}:
            return None
        inner = field["schema"]
        if set(inner) != {"type"} or inner["type"] not in _PLAIN_SCHEMAS:
            return None
        kinds.append(_PLAIN_SCHEMAS[inner["type"]])
    return tuple(kinds) if len(kinds) == len(fields["fields"]) else None


def _fingerprint(name: str, arguments: dict[str, Any], result: dict[str, Any]) -> str:
    canonical = json.dumps(
        {"name": name, "arguments": arguments, "result": result},
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _param_text(param: inspect.Parameter) -> str:
    text = f"{param.name}: {type_text(param.annotation)}"
    if param.default is not inspect.Parameter.empty:
        text += f" = {param.default!r}"
    return text
