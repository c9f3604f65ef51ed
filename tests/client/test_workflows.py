"""Workflows are validated before anything is published: no broker is needed to see these errors."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from task_client import AsyncPartial, AsyncWorkflow, InvalidArguments, Partial, TaskClient, Workflow, chord, group

from ..catalog import diagnostics

UNREACHABLE = "redis://127.0.0.1:1/0"  # nothing listens: any publish would fail with BrokerUnavailable


@pytest.fixture
def client() -> Iterator[TaskClient]:
    with TaskClient(UNREACHABLE) as task_client:
        yield task_client


def test_s_is_complete_with_every_parameter_and_partial_without_the_first(client: TaskClient) -> None:
    assert isinstance(client.add.s(4, 7), Workflow)
    assert isinstance(client.add.s(x=4, y=7), Workflow)
    assert isinstance(client.mul.s(10), Partial) and isinstance(client.mul.s(y=10), Partial)
    assert isinstance(client.xsum.s(), Partial)
    assert isinstance(client.aio.add.s(4, 7), AsyncWorkflow) and isinstance(client.aio.mul.s(10), AsyncPartial)
    assert repr(client.add.s(4, 7) | client.mul.s(10)) == "<Workflow math.add(4, 7) | math.mul(_, 10)>"


def test_arguments_are_validated_when_the_signature_is_made(client: TaskClient) -> None:
    with pytest.raises(InvalidArguments, match="x: Input should be a valid integer") as caught:
        client.add.s("a", 7)  # type: ignore[call-overload]
    assert caught.value.contract == "math.add"
    with pytest.raises(InvalidArguments, match="y: Input should be a valid integer"):
        client.mul.s("ten")  # type: ignore[call-overload]
    with pytest.raises(InvalidArguments, match="x: filled by the previous result"):
        client.mul.s(x=1)  # type: ignore[call-overload]
    with pytest.raises(InvalidArguments, match="takes 1 positional arguments after x but 3 were given"):
        client.mul.s(1, 2, 3)  # type: ignore[call-overload]


def test_a_link_that_cannot_take_the_previous_result_is_named(client: TaskClient) -> None:
    with pytest.raises(InvalidArguments) as caught:
        client.add.s(4, 7) | client.mul.s(10) | client.xsum.s()  # type: ignore[operator]
    assert str(caught.value) == (
        "link 3 (math.xsum): numbers: the previous result (integer) cannot be this parameter (array)"
    )
    assert caught.value.contract == "math.xsum"
    with pytest.raises(InvalidArguments, match=r"^link 2 \(math.mul\): x: the previous result \(number\)"):
        client.div.s(1, 2) | client.mul.s(3)  # type: ignore[operator]
    # An integer feeds a number.
    assert isinstance(client.add.s(1, 2) | client.div.s(2), Workflow)


def test_composition_refuses_what_is_not_a_workflow(client: TaskClient) -> None:
    with pytest.raises(TypeError):
        client.add.s(1, 2) | client.add.s(3, 4)  # type: ignore[operator]
    with pytest.raises(TypeError, match="group item 2: expected a complete call or chain"):
        group(client.add.s(1, 2), client.mul.s(3))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="a chord's header must be a group"):
        chord(client.add.s(1, 2), client.xsum.s())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="all from client or all from client.aio"):
        group(client.add.s(1, 2), client.aio.add.s(3, 4))  # type: ignore[arg-type]


def test_the_default_bound_is_the_sum_of_the_links_bounds(client: TaskClient) -> None:
    assert (client.add.s(1, 2) | client.mul.s(3)).timeout == 20.0
    assert group(client.add.s(1, 2), client.task(diagnostics.sleep).s(1)).timeout == 13.0
    assert chord(group(client.add.s(1, 2), client.add.s(3, 4)), client.xsum.s()).timeout == 30.0
    assert (client.add.with_options(timeout=2).s(1, 2) | client.mul.with_options(timeout=1).s(3)).timeout == 3.0
