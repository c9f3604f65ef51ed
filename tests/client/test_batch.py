"""Batch planning and chunk decoding, without Redis: the logic sync and async share."""

from __future__ import annotations

import pytest

from task_client import ContractMismatch, InvalidArguments, TaskFailed, UnknownTask
from task_client._batch import DEFAULT_CHUNK_SIZE, Batch
from task_client._chunks import chunk_outcomes
from task_contracts import math
from task_contracts.wire import SHAPE_HEADER, chunk_task_name


def test_chunks_are_even_and_keep_input_order() -> None:
    batch = Batch(math.add, [(i, i) for i in range(260)], chunk_size=250)
    assert [(m.first, m.count) for m in batch.messages] == [(0, 130), (130, 130)]
    items = [item for message in batch.messages for item in message.args[0]]
    assert items == [[[i, i], {}] for i in range(260)]


def test_default_chunk_size_and_one_message_per_call() -> None:
    assert len(Batch(math.add, [(1, 1)] * (2 * DEFAULT_CHUNK_SIZE), chunk_size=None).messages) == 2
    single = Batch(math.add, [(1, 2), {"x": 3, "y": 4}], chunk_size=1)
    assert [(m.chunked, m.args, m.kwargs) for m in single.messages] == [
        (False, [1, 2], {}),
        (False, [3, 4], {}),  # named arguments travel as the contract lays them out
    ]


def test_outgoing_messages_name_the_chunk_task_and_carry_the_shape_and_bound() -> None:
    chunked, single = (Batch(math.add, [(1, 2)] * 3, chunk_size=size).outgoing("math") for size in (10, 1))
    assert chunked[0].name == chunk_task_name("math.add") == "math.add:chunk"
    assert chunked[0].headers == {SHAPE_HEADER: math.add.shape}
    assert chunked[0].time_limit == math.add.timeout * 3
    assert [m.name for m in single] == ["math.add"] * 3 and single[0].time_limit is None


def test_every_item_is_validated_before_planning() -> None:
    with pytest.raises(InvalidArguments) as caught:
        Batch(math.add, [(1, 2), (1, "b")], chunk_size=None)
    assert caught.value.problems == (
        "item 1: y: Input should be a valid integer, unable to parse string as an integer (got 'b')",
    )
    with pytest.raises(InvalidArguments, match="item 0: expected a tuple or list"):
        Batch(math.add, ["12"], chunk_size=None)


def test_chunk_replies_become_one_outcome_per_call() -> None:
    record = {
        "status": "SUCCESS",
        "result": [
            {"status": "SUCCESS", "result": 3},
            {"status": "FAILURE", "result": {"exc_type": "ValueError", "exc_message": ["bad"]}, "traceback": "tb"},
        ],
    }
    value, failure = chunk_outcomes(math.add, "chunk-id", record, 2)
    assert value == 3
    assert isinstance(failure, TaskFailed) and failure.remote_type == "ValueError" and failure.task_id == "chunk-id"


def test_a_chunk_failing_as_a_whole_fails_each_call() -> None:
    record = {"status": "FAILURE", "result": {"exc_type": "NotRegistered", "exc_message": ["math.add:chunk"]}}
    outcomes = chunk_outcomes(math.add, "chunk-id", record, 3)
    assert len(outcomes) == 3 and all(isinstance(item, UnknownTask) for item in outcomes)


def test_a_reply_of_the_wrong_length_is_a_contract_mismatch() -> None:
    outcomes = chunk_outcomes(
        math.add, "chunk-id", {"status": "SUCCESS", "result": [{"status": "SUCCESS", "result": 1}]}, 2
    )
    assert len(outcomes) == 2 and all(isinstance(item, ContractMismatch) for item in outcomes)
    outcomes = chunk_outcomes(
        math.add, "chunk-id", {"status": "SUCCESS", "result": [{"status": "SUCCESS", "result": "x"}]}, 1
    )
    assert isinstance(outcomes[0], ContractMismatch)
