"""`Contract.encode_arguments` skips pydantic for plain positional calls (`_plain_types`): the result
must be exactly what validation gives, for every value, and every other contract is validated as always."""

from __future__ import annotations

import copy
from typing import Annotated, Any, Literal

import pydantic
from hypothesis import given
from hypothesis import strategies as st

from task_contracts import ArgumentsError, Contract, ResultError, contract, math
from tests.contracts.plain_values import VALUES, Count


@contract(name="plain.mixed", queue="plain", timeout=5)
def mixed(count: int, label: str, flag: bool) -> str:
    """Three plain parameters."""
    ...


@contract(name="plain.defaulted", queue="plain", timeout=5)
def defaulted(count: int, label: str = "x") -> str:
    """A default: calls leaving it out must not send it."""
    ...


@contract(name="plain.keyword", queue="plain", timeout=5)
def keyword(count: int, *, label: str) -> str:
    """A keyword-only parameter."""
    ...


@contract(name="plain.bounded", queue="plain", timeout=5)
def bounded(count: Annotated[int, pydantic.Field(ge=0)]) -> int:
    """A constraint."""
    ...


@contract(name="plain.literal", queue="plain", timeout=5)
def literal(mode: Literal["a", "b"]) -> int:
    """Not a plain str."""
    ...


@contract(name="plain.decimal", queue="plain", timeout=5)
def decimal(value: float) -> float:
    """A float: its JSON form is not always the value."""
    ...


Outcome = tuple[list[tuple[type, Any]], dict[str, tuple[type, Any]]] | str


def typed(subject: Contract[..., Any], args: tuple[Any, ...]) -> Outcome:
    """The wire arguments with each value's exact type (True == 1 in Python), or the problem named."""
    try:
        wire_args, wire_kwargs = subject.encode_arguments(args, {})
    except ArgumentsError as error:
        return str(error)
    return [(type(value), value) for value in wire_args], {k: (type(v), v) for k, v in wire_kwargs.items()}


def validated(subject: Contract[..., Any], args: tuple[Any, ...]) -> Outcome:
    """What pydantic's path gives."""
    slow = copy.copy(subject)
    slow._plain_types = None
    return typed(slow, args)


def encoded(subject: Contract[..., Any], args: tuple[Any, ...]) -> Outcome:
    return typed(subject, args)


def test_only_positional_plain_int_str_bool_signatures_skip_validation() -> None:
    assert math.add._plain_types == (int, int)
    assert mixed._plain_types == (int, str, bool)
    for other in (defaulted, keyword, bounded, literal, decimal, math.div, math.xsum):
        assert other._plain_types is None, other


@given(st.tuples(VALUES, VALUES, VALUES))
def test_plain_calls_encode_as_validation_does(args: tuple[Any, Any, Any]) -> None:
    assert encoded(mixed, args) == validated(mixed, args)
    assert encoded(math.add, args[:2]) == validated(math.add, args[:2])
    assert encoded(math.add, args) == validated(math.add, args)  # too many


def test_the_values_travel_as_given() -> None:
    assert encoded(mixed, (4, "\udcff", False)) == ([(int, 4), (str, "\udcff"), (bool, False)], {})
    assert encoded(math.add, (True, 7)) == ([(int, 1), (int, 7)], {})  # a bool for an int: validated
    assert encoded(math.add, (Count(4), 7)) == ([(int, 4), (int, 7)], {})  # a subclass: validated
    assert defaulted.encode_arguments((4,), {}) == ([4], {})
    huge = 10**5000  # past JSON's 4,300 digits: refused when the envelope is written, as before
    assert encoded(math.add, (huge, 1)) == validated(math.add, (huge, 1)) == ([(int, huge), (int, 1)], {})


def decoded(subject: Contract[..., Any], value: Any, *, slow: bool = False) -> tuple[type, Any] | str:
    if slow:
        subject = copy.copy(subject)
        subject._plain_result = None
    try:
        result = subject.decode_result(value)
    except ResultError as error:
        return str(error)
    return type(result), result


def test_only_plain_int_str_bool_results_skip_validation() -> None:
    assert (math.add._plain_result, mixed._plain_result, bounded._plain_result) == (int, str, int)
    assert (math.div._plain_result, math.stats._plain_result, literal._plain_result) == (None, None, int)


@given(VALUES)
def test_plain_results_decode_as_validation_does(value: Any) -> None:
    for subject in (math.add, mixed):
        assert decoded(subject, value) == decoded(subject, value, slow=True)
