"""The admission script's arguments, built without the JSON encoder where it can be done alike (no Redis)."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from task_contracts.wire import call_digest
from task_server._admission import running_mark
from task_server._tokens import unique_token

DIGESTS = (
    st.none()
    | st.text(max_size=70)
    | st.text(st.characters(max_codepoint=127), max_size=70)  # quotes, backslashes, control characters
    | st.builds(call_digest, st.lists(st.integers()), st.just({}))
)


@given(
    interruptible=st.booleans() | st.integers(),
    attempt=st.integers() | st.booleans(),
    digest=DIGESTS,
    delivery=st.builds(unique_token) | st.text(max_size=20),
)
def test_a_running_mark_is_written_as_json_dumps_writes_it(
    interruptible: Any, attempt: Any, digest: Any, delivery: str
) -> None:
    mark: dict[str, Any] = {"interruptible": interruptible, "attempt": attempt}
    if digest:
        mark["digest"] = digest
    mark["delivery"] = delivery
    assert running_mark(interruptible, attempt, digest, delivery) == json.dumps(mark)


def test_each_admission_has_a_token_of_its_own() -> None:
    tokens = {unique_token() for _ in range(1000)}
    assert len(tokens) == 1000
