"""The worker's side of plain calls: `Contract.accept_call` and `encode_result` skip pydantic for a
call in the caller's own shape with plain values of exactly their types, and a plain result; what
they return (or refuse) must be exactly what validation gives, for every value."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from task_contracts import ArgumentsError, Contract, IncompatibleCall, ResultError, contract, math
from tests.contracts.plain_values import VALUES, Count


@contract(name="plain.accepted", queue="plain", timeout=5)
def accepted(count: int, label: str, flag: bool) -> str:
    """Three plain parameters."""
    ...


@contract(name="plain.accepted_default", queue="plain", timeout=5)
def accepted_default(count: int, label: str = "x") -> bool:
    """A default: not plain, validated as always."""
    ...


def _slow(subject: Contract[..., Any]) -> Contract[..., Any]:
    slow = copy.copy(subject)
    slow._plain_types = None
    slow._plain_result = None
    return slow


def _accepted(subject: Contract[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    try:
        values = subject.accept_call(args, kwargs, subject.shape)
    except (ArgumentsError, IncompatibleCall) as error:
        return type(error), str(error)
    return {name: (type(value), value) for name, value in values.items()}


def _encoded(subject: Contract[..., Any], value: Any) -> Any:
    try:
        result = subject.encode_result(value)
    except ResultError as error:
        return str(error)
    return type(result), result


@given(st.tuples(VALUES, VALUES, VALUES))
def test_plain_calls_are_accepted_as_validation_accepts_them(args: tuple[Any, Any, Any]) -> None:
    for subject, given_args in ((accepted, args), (math.add, args[:2]), (math.add, args), (accepted_default, args[:2])):
        assert _accepted(subject, given_args, {}) == _accepted(_slow(subject), given_args, {})
    assert _accepted(math.add, args[:1], {"y": args[1]}) == _accepted(_slow(math.add), args[:1], {"y": args[1]})


def test_the_fast_path_is_taken_only_for_plain_calls() -> None:
    assert _accepted(math.add, (4, 7), {}) == {"x": (int, 4), "y": (int, 7)}
    assert _accepted(math.add, (True, 7), {}) == {"x": (int, 1), "y": (int, 7)}  # a bool for an int: validated
    assert _accepted(math.add, (Count(4), 7), {}) == {"x": (int, 4), "y": (int, 7)}  # a subclass: validated


@given(VALUES)
def test_plain_results_are_encoded_as_validation_encodes_them(value: Any) -> None:
    for subject in (math.add, accepted, accepted_default):
        assert _encoded(subject, value) == _encoded(_slow(subject), value)
