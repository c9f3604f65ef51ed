"""Values for the plain-call fast paths' equality tests (client and worker side): plain ones of
exactly their type, a subclass of int, and values that are not plain at all."""

from __future__ import annotations

from hypothesis import strategies as st


class Count(int):
    """An int subclass: never taken as plain, validated as always."""


VALUES = st.one_of(
    st.integers(min_value=-(2**200), max_value=2**200),
    st.booleans(),
    st.text(),
    st.floats(allow_nan=True),
    st.none(),
    st.builds(Count, st.integers(min_value=-(2**70), max_value=2**70)),
    st.lists(st.integers(), max_size=2),
)
