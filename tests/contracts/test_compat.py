# Contract stubs have no body by design.
# mypy: disable-error-code="empty-body"
"""What a worker accepts from a caller built with another shape of the contract, rule by rule.

Each test declares the caller's contract ("old" or "new") and the worker's, and passes the
caller's encoded call with its shape to the worker's `accept_call`, as the worker does.
"""

from __future__ import annotations

import json
from typing import Any

import pydantic
import pytest

from task_contracts import ArgumentsError, Contract, IncompatibleCall, ResultError, contract, wire_name
from task_contracts._compat import read_shape


def call(caller: Contract[..., Any], worker: Contract[..., Any], *args: Any, **kwargs: Any) -> dict[str, Any]:
    """The worker's typed values for a call the caller encodes, as it travels on the wire."""
    wire_args, wire_kwargs = caller.encode_arguments(args, kwargs)
    return worker.accept_call(wire_args, wire_kwargs, caller.shape)


@contract(name="math.add", queue="math", timeout=10)
def add(x: int, y: int) -> int: ...


@contract(name="math.add", queue="math", timeout=10)
def add_optional_z(x: int, y: int, z: int = 0) -> int: ...


@contract(name="math.add", queue="math", timeout=10)
def add_required_z(x: int, y: int, z: int) -> int: ...


@contract(name="math.add", queue="math", timeout=10)
def add_renamed(x: int, z: int) -> int: ...


@contract(name="math.add", queue="math", timeout=10)
def add_only_x(x: int) -> int: ...


@contract(name="math.add", queue="math", timeout=10)
def add_nullable(x: int, y: int | None) -> int: ...


@contract(name="math.add", queue="math", timeout=10)
def add_float(x: int, y: float) -> float: ...


@contract(name="math.add", queue="math", timeout=10)
def add_str(x: int, y: str) -> int: ...


@contract(name="math.add", queue="math", timeout=10)
def add_default_one(x: int, y: int = 1) -> int: ...


@contract(name="math.add", queue="math", timeout=10)
def add_default_two(x: int, y: int = 2) -> int: ...


def test_new_optional_parameter_old_caller_runs_with_the_workers_default() -> None:
    assert call(add, add_optional_z, 4, 7) == {"x": 4, "y": 7, "z": 0}


def test_new_optional_parameter_new_caller_runs_on_an_old_worker_when_it_does_not_use_it() -> None:
    assert call(add_optional_z, add, 4, 7) == {"x": 4, "y": 7}
    with pytest.raises(IncompatibleCall, match=r"^math\.add: parameter 'z' is not known to this worker$"):
        call(add_optional_z, add, 4, 7, z=1)
    with pytest.raises(IncompatibleCall, match="parameter 'z' is not known"):
        call(add_optional_z, add, 4, 7, 1)  # by position too: never silently dropped


def test_new_required_parameter_is_refused_naming_it() -> None:
    with pytest.raises(IncompatibleCall, match="parameter 'z' is required by this worker and unknown to the caller"):
        call(add, add_required_z, 4, 7)
    with pytest.raises(IncompatibleCall, match="parameter 'z' is not known"):
        call(add_required_z, add, 4, 7, 1)


def test_removed_parameter_is_refused_when_the_call_uses_it() -> None:
    with pytest.raises(IncompatibleCall, match="parameter 'y' is not known"):
        call(add, add_only_x, 4, 7)
    assert call(add_optional_z, add, 4, 7) == {"x": 4, "y": 7}  # an optional one left out: runs


def test_renamed_parameter_is_refused_naming_both_names() -> None:
    with pytest.raises(IncompatibleCall) as caught:
        call(add, add_renamed, 4, 7)
    assert caught.value.problems == (
        "parameter 'y' is not known to this worker",
        "parameter 'z' is required by this worker and unknown to the caller's contract",
    )


def test_a_parameter_that_became_optional_runs_old_calls_and_fails_new_calls_that_leave_it_out() -> None:
    assert call(add, add_default_one, 4, 7) == {"x": 4, "y": 7}
    assert call(add_default_one, add, 4, 7) == {"x": 4, "y": 7}
    with pytest.raises(IncompatibleCall, match="parameter 'y' is required by this worker and the call leaves it out"):
        call(add_default_one, add, 4)


def test_widened_types_accept_every_old_call() -> None:
    assert call(add, add_nullable, 4, 7) == {"x": 4, "y": 7}
    assert call(add, add_float, 4, 7) == {"x": 4, "y": 7.0}


def test_widened_type_new_caller_on_an_old_worker_fails_only_for_the_new_values() -> None:
    assert call(add_nullable, add, 4, 7) == {"x": 4, "y": 7}
    with pytest.raises(IncompatibleCall, match=r"^math\.add: y changed from int \| None to int \(y: "):
        call(add_nullable, add, 4, None)


def test_changed_type_is_refused_naming_the_change() -> None:
    with pytest.raises(IncompatibleCall, match=r"^math\.add: y changed from int to str"):
        call(add, add_str, 4, 7)
    with pytest.raises(IncompatibleCall, match=r"y changed from str to int"):
        call(add_str, add, 4, "seven")
    assert call(add_str, add, 4, "7") == {"x": 4, "y": 7}  # a value both types accept still runs


def test_changed_default_applies_the_workers_default_to_calls_that_leave_it_out() -> None:
    assert call(add_default_one, add_default_two, 4) == {"x": 4, "y": 2}
    assert call(add_default_one, add_default_two, 4, 1) == {"x": 4, "y": 1}


def test_same_type_invalid_value_is_invalid_arguments_not_a_mismatch() -> None:
    shape = add.shape
    with pytest.raises(ArgumentsError) as caught:
        add.accept_call([4, "seven"], {}, shape)
    assert not isinstance(caught.value, IncompatibleCall)
    assert "y: Input should be a valid integer" in str(caught.value)


def test_calls_without_a_shape_are_validated_as_before() -> None:
    assert add_optional_z.accept_call([4, 7], {}, None) == {"x": 4, "y": 7, "z": 0}
    with pytest.raises(ArgumentsError, match="Extra inputs are not permitted") as caught:
        add.accept_call([4, 7], {"z": 1}, None)
    assert not isinstance(caught.value, IncompatibleCall)


def test_a_malformed_shape_is_invalid_arguments() -> None:
    for shape in ({}, {"version": "1", "parameters": []}, {"version": 1, "parameters": [["x"]]}, "x"):
        with pytest.raises(ArgumentsError, match="malformed contract_shape header"):
            add.accept_call([4, 7], {}, shape)


def test_another_major_version_is_refused() -> None:
    @contract(name="math.add", queue="math", timeout=10, version=2)
    def add_v2(x: int, y: int) -> int: ...

    with pytest.raises(IncompatibleCall, match="the caller's contract is version 2, this worker serves version 1"):
        add.accept_call([4, 7], {}, add_v2.shape)


def test_shape_is_small_and_names_each_parameter_in_order() -> None:
    assert add.shape == {
        "version": 1,
        "parameters": [["x", "int", add.shape["parameters"][0][2]], ["y", "int", add.shape["parameters"][1][2]]],
    }
    assert add.shape["parameters"][0][2] == add_str.shape["parameters"][0][2]  # same type, same digest
    assert add.shape["parameters"][1][2] != add_str.shape["parameters"][1][2]
    assert len(str(add.shape)) < 120


def test_major_versions_have_their_own_wire_names() -> None:
    @contract(name="math.add", queue="math", timeout=10, version=2)
    def add_v2(x: int, y: int, z: int) -> int: ...

    assert (add.name, add.version, add.base_name) == ("math.add", 1, "math.add")
    assert (add_v2.name, add_v2.version, add_v2.base_name) == ("math.add.v2", 2, "math.add")
    assert wire_name("math.add", 3) == "math.add.v3"
    assert add_v2.summary()["version"] == 2


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_a_bad_version_is_refused_at_declaration(bad: Any) -> None:
    with pytest.raises(TypeError, match="version must be an integer from 1"):

        @contract(name="math.add", queue="math", version=bad)
        def stub(x: int) -> int: ...


def test_a_version_suffix_in_the_declared_name_is_refused() -> None:
    with pytest.raises(TypeError, match="declare a major version with version=N"):

        @contract(name="math.add.v2", queue="math")
        def add_v2(x: int) -> int: ...


class Total(pydantic.BaseModel):
    total: int


class TotalWithCount(pydantic.BaseModel):
    total: int
    count: int = 0


class Count(pydantic.BaseModel):
    count: int


@contract(name="math.total", queue="math")
def total_old(numbers: list[int]) -> Total: ...


@contract(name="math.total", queue="math")
def total_new(numbers: list[int]) -> TotalWithCount: ...


@contract(name="math.total", queue="math")
def total_removed(numbers: list[int]) -> Count: ...


def test_a_result_field_added_is_ignored_by_old_callers() -> None:
    assert total_old.decode_result(total_new.encode_result(TotalWithCount(total=3, count=2))) == Total(total=3)


def test_a_result_field_added_with_a_default_is_filled_in_for_new_callers_of_old_workers() -> None:
    assert total_new.decode_result(total_old.encode_result(Total(total=3))) == TotalWithCount(total=3, count=0)


def test_a_result_field_removed_is_an_error_naming_it() -> None:
    with pytest.raises(ResultError, match="total: Field required"):
        total_old.decode_result(total_removed.encode_result(Count(count=2)))


def test_the_calls_of_a_chunk_read_their_shared_shape_once() -> None:
    shape = json.loads(json.dumps(add.shape))  # as a message's header decodes
    first = read_shape("math.add", shape)
    assert read_shape("math.add", shape) is first  # the next call of the chunk: not read again
    other = json.loads(json.dumps(add_str.shape))  # another message's shape is read anew
    assert read_shape("math.add", other) != first
    with pytest.raises(ArgumentsError, match="malformed contract_shape"):
        read_shape("math.add", {"version": "1"})
    assert read_shape("math.add", shape) == first


def test_a_shape_equal_to_the_workers_own_reads_as_its_own() -> None:
    received = json.loads(json.dumps(add.shape))  # a fresh copy, as each message brings
    assert received == add.shape and received is not add.shape
    assert add.accept_call([4, 7], {}, received) == {"x": 4, "y": 7}
    assert add.accept_call([4], {"y": 7}, json.loads(json.dumps(add.shape))) == {"x": 4, "y": 7}
    with pytest.raises(ArgumentsError, match="parameter 'z' is not known to this worker"):
        add.accept_call([4, 7], {"z": 1}, received)
    with pytest.raises(ArgumentsError, match="y") as caught:
        add.accept_call([4, "seven"], {}, received)
    assert not isinstance(caught.value, IncompatibleCall)


@pytest.mark.parametrize("version", [1.0, True])
def test_a_version_equal_to_the_workers_but_of_another_type_is_read_as_before(version: Any) -> None:
    received = {**json.loads(json.dumps(add.shape)), "version": version}
    assert received == add.shape
    if isinstance(version, float):
        with pytest.raises(ArgumentsError, match="malformed contract_shape header"):
            add.accept_call([4, 7], {}, received)
    else:  # an int to read_shape, as before
        assert add.accept_call([4, 7], {}, received) == {"x": 4, "y": 7}
