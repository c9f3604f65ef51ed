"""A call's body takes the argument digest its early admission was asked with only for the very
argument objects it was computed from (`_preadmission.digest_of_call`); else it computes its own."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from celery.app.task import Context
from kombu.utils import json as kombu_json

import task_server._preadmission as preadmission
from task_contracts.wire import call_digest
from task_server._internals.worker import custom_headers
from task_server._preadmission import DIGEST_KEY, EarlyDigest, claim_admission, digest_asked_with, digest_of_call


@pytest.fixture
def computed(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The arguments of every digest computed by `_preadmission`."""
    seen: list[Any] = []

    def counting(args: Any, kwargs: Any) -> str | None:
        seen.append((args, kwargs))
        return call_digest(args, kwargs)

    monkeypatch.setattr(preadmission, "call_digest", counting)
    return seen


def delivery(args: list[Any], kwargs: dict[str, Any]) -> SimpleNamespace:
    """A Celery request as `digest_asked_with` reads it, and the task request its body then sees."""
    request = SimpleNamespace(args=args, kwargs=kwargs, request_dict={})
    digest_asked_with(request)
    return SimpleNamespace(**request.request_dict)


def test_the_body_takes_the_digest_of_the_same_argument_objects(computed: list[Any]) -> None:
    args, kwargs = [[1, 2], "x"], {"n": {"k": 1.5}}
    task_request = delivery(args, kwargs)
    assert digest_of_call(task_request, tuple(args), dict(kwargs)) == call_digest(args, kwargs)
    assert len(computed) == 1  # asked early only
    assert getattr(task_request, DIGEST_KEY) is None  # claimed once


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        ([[1, 2], "x"], {"n": {"k": 1.5}, "extra": 1}),  # another named argument
        ([[1, 2]], {"n": {"k": 1.5}}),  # fewer
        ([[1, 2], "x"], {"m": {"k": 1.5}}),  # another name
    ],
)
def test_other_arguments_get_their_own_digest(computed: list[Any], args: list[Any], kwargs: dict[str, Any]) -> None:
    asked_args, asked_kwargs = [[1, 2], "x"], {"n": {"k": 1.5}}
    task_request = delivery(asked_args, asked_kwargs)
    # Equal values in other objects (another delivery's) are not taken either: computed again.
    equal = delivery([[1, 2], "x"], {"n": {"k": 1.5}})
    assert digest_of_call(equal, tuple(asked_args), asked_kwargs) == call_digest(asked_args, asked_kwargs)
    assert len(computed) == 3
    same_objects = [asked_args[index] if index < len(asked_args) else value for index, value in enumerate(args)]
    named = {name: asked_kwargs.get(name, value) for name, value in kwargs.items()}
    assert digest_of_call(task_request, tuple(same_objects), named) == call_digest(same_objects, named)
    assert len(computed) == 4


def test_a_header_of_the_same_name_is_never_taken_for_a_digest(computed: list[Any]) -> None:
    forged = SimpleNamespace(**{DIGEST_KEY: "0" * 64})
    assert digest_of_call(forged, (1,), {}) == call_digest([1], {})
    assert len(computed) == 1


def test_arguments_without_a_digest_keep_none(computed: list[Any]) -> None:
    args: list[Any] = [object()]  # not JSON: no digest is compared
    task_request = delivery(args, {})
    assert isinstance(getattr(task_request, DIGEST_KEY), EarlyDigest)
    assert digest_of_call(task_request, tuple(args), {}) is None
    assert len(computed) == 1


def test_a_digest_asked_with_leaves_no_object_in_the_headers_a_retry_carries() -> None:
    """An early admission whose write failed (a RabbitMQ broker, its Redis backend briefly gone: the
    thread then asks itself) leaves its digest but no verdict. Celery's context counts the digest
    among the request's custom headers, which `Task.retry` sends with the retry's message: there
    an `EarlyDigest` failed the retry's encoding (kombu's JSON) instead of sending it."""
    request = SimpleNamespace(args=[4, 7], kwargs={}, request_dict={"id": "t-1", "task": "math.add"})
    digest_asked_with(request)  # asked early; the admission's write then raised: no verdict
    fields = dict(request.request_dict)
    task_request = Context({**fields, "headers": custom_headers(fields)})
    digest_of_call(task_request, (4, 7), {})
    assert claim_admission(task_request) is None
    kombu_json.dumps(task_request.headers)  # as a retry's message carries them
