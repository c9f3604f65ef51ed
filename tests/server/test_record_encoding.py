"""The worker's records are encoded as Celery's backend encodes them (no Redis: nothing is stored)."""

from __future__ import annotations

import datetime
import decimal
import json
import uuid
from typing import Any

import pytest
from celery import Celery
from hypothesis import given
from hypothesis import strategies as st
from kombu.exceptions import EncodeError
from kombu.utils import json as kombu_json

from task_contracts import resolve_urls
from task_server._app import create_app
from task_server._backend import one_shot_json
from task_server._settings import WorkerSettings

URL = "redis://127.0.0.1:1/0"

METAS: list[dict[str, Any]] = [
    {"status": "SUCCESS", "result": 11, "traceback": None, "children": [], "date_done": "2026-12-04T00:00:00+00:00"},
    {"status": "FAILURE", "result": {"exc_type": "ValueError", "exc_message": ["é", "\u2603"]}, "task_id": "t"},
    {"result": [1.5, None, True, {"nested": ["a", 2]}], "progress": {"done": 3, "total": None}},
    {"when": datetime.datetime(2026, 12, 4, tzinfo=datetime.UTC), "id": uuid.UUID(int=7)},
    {"amount": decimal.Decimal("1.10"), "day": datetime.date(2026, 12, 4), "raw": b"bytes"},
]


def worker_app() -> Celery:
    return create_app(WorkerSettings(urls=resolve_urls(URL)))


@pytest.mark.parametrize("meta", METAS)
def test_a_record_is_encoded_as_celerys_backend_encodes_it(meta: dict[str, Any]) -> None:
    backend = worker_app().backend
    assert backend.encode_record(dict(meta)) == backend.encode(dict(meta))


def test_a_value_json_cannot_hold_fails_as_celerys_encoding_fails() -> None:
    backend = worker_app().backend
    with pytest.raises(EncodeError) as celerys:
        backend.encode({"result": object()})
    with pytest.raises(EncodeError) as ours:
        backend.encode_record({"result": object()})
    assert type(ours.value.args[0]) is type(celerys.value.args[0]) is TypeError


def test_compressed_results_are_encoded_by_celery() -> None:
    app = worker_app()
    app.conf.result_compression = "zlib"
    backend = app.backend
    if not hasattr(backend, "compression"):
        pytest.skip("Celery before 5.7 compresses no results")
    assert backend.encode_record(dict(METAS[0])) == backend.encode(dict(METAS[0]))
    assert isinstance(backend.encode_record(dict(METAS[0])), bytes)  # compressed


def test_a_looped_value_fails_as_celerys_encoding_fails() -> None:
    backend = worker_app().backend
    looped: dict[str, Any] = {}
    looped["self"] = looped
    with pytest.raises(EncodeError) as celerys:
        backend.encode({"result": looped})
    with pytest.raises(EncodeError) as ours:
        backend.encode_record({"result": looped})
    assert str(ours.value) == str(celerys.value)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4),
    max_leaves=20,
)


@given(JSON)
def test_one_shot_json_writes_what_its_encoder_writes(value: Any) -> None:
    for encoder in (json.JSONEncoder(), json.JSONEncoder(ensure_ascii=False, sort_keys=True), kombu_json.JSONEncoder()):
        assert one_shot_json(encoder)(value) == encoder.encode(value)
