"""Task ids and delivery tags: version-4 UUID text, never handed out twice (threads, forks), also when made ahead."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator

import pytest

from task_client import TaskClient
from task_client._ids import new_id
from task_client._runtime import Runtime
from tests.forking import reported_by_forked_child


def test_ids_are_version_4_uuids_as_uuid_prints_them() -> None:
    for _ in range(1000):
        text = new_id()
        value = uuid.UUID(text)
        assert value.version == 4 and value.variant == uuid.RFC_4122
        assert str(value) == text


def test_ids_taken_by_many_threads_at_once_are_all_different() -> None:
    taken: list[list[str]] = [[] for _ in range(8)]

    def take(into: list[str]) -> None:
        into.extend(new_id() for _ in range(2000))

    threads = [threading.Thread(target=take, args=(into,)) for into in taken]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    every = [text for part in taken for text in part]
    assert len(every) == 16000 and len(set(every)) == 16000


# Python 3.12+ warns about fork() in a process with threads; this child only writes to a pipe.
@pytest.mark.filterwarnings("ignore:.*fork.*:DeprecationWarning")
def test_a_forked_child_does_not_repeat_its_parents_next_ids() -> None:
    new_id()  # the parent holds unused random bytes now
    child = set(reported_by_forked_child(lambda: " ".join(new_id() for _ in range(10))).split())
    parent = {new_id() for _ in range(10)}
    assert len(child) == 10 and not child & parent


@pytest.fixture
def runtime() -> Iterator[Runtime]:
    """A client's runtime; nothing connects until a call is made."""
    with TaskClient("redis://127.0.0.1:1/0") as client:
        yield client._runtime


def test_an_id_made_ahead_goes_to_one_call_with_its_own_cancel_hash(runtime: Runtime) -> None:
    runtime._identities.prepare()
    runtime._identities.prepare()  # one is enough for a sequential caller
    assert len(runtime._identities.waiting()) == 1
    spare = runtime._identities.waiting()[0][0]
    task_id, task_cancel_hash = runtime._identities.take()
    assert task_id == spare and task_cancel_hash == runtime.cancel_hash(spare)
    following, following_hash = runtime._identities.take()  # none left: made now
    assert following != spare and following_hash == runtime.cancel_hash(following)


@pytest.mark.filterwarnings("ignore:.*fork.*:DeprecationWarning")
def test_a_forked_child_does_not_use_an_id_its_parent_made_ahead(runtime: Runtime) -> None:
    runtime._identities.prepare()
    spare = runtime._identities.waiting()[0][0]
    child = reported_by_forked_child(lambda: runtime._identities.take()[0])  # the id its next call would get
    assert child and child != spare
    assert runtime._identities.take()[0] == spare  # the parent's own next call still gets it
