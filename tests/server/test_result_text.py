"""Celery's tracer writes each result's text (`saferepr`); the worker writes the same text directly
for numbers, None and short strings (`_internals.worker.plain_saferepr`)."""

from __future__ import annotations

from typing import Any

import celery.app.trace
from celery.utils.saferepr import saferepr
from hypothesis import given
from hypothesis import strategies as st

from task_server._internals.worker import plain_saferepr, write_results_plainly

LENGTHS = st.one_of(st.none(), st.integers(min_value=-2, max_value=40), st.just(1024))
PLAIN = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=60),
    st.text(alphabet="'\\\n\"ab ", max_size=30),
)
OTHER = st.one_of(
    st.lists(st.integers(), max_size=5),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=4),
    st.binary(max_size=20),
    st.tuples(st.integers(), st.text(max_size=5)),
)


@given(value=st.one_of(PLAIN, OTHER), maxlen=LENGTHS)
def test_the_text_is_celerys(value: Any, maxlen: int | None) -> None:
    assert plain_saferepr(value, maxlen) == saferepr(value, maxlen)


def test_subclasses_take_celerys_way() -> None:
    class Named(int):
        def __repr__(self) -> str:
            return "Named"

    assert plain_saferepr(Named(3), 1024) == saferepr(Named(3), 1024)


def test_the_tracer_uses_it_once_asked() -> None:
    write_results_plainly()
    write_results_plainly()
    assert celery.app.trace.saferepr is plain_saferepr
