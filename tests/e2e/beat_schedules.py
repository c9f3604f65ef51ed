"""Schedules for the beat end-to-end tests; the queue comes from the test, so tests never share one."""

from __future__ import annotations

import os
from datetime import timedelta

from task_contracts import Schedule, math

QUEUE = os.environ.get("BEAT_TEST_QUEUE", "math")

#: Fires every second: 31337 + 4242 = 35579, a value no other test computes.
EVERY_SECOND = [Schedule(math.add, args=(31337, 4242), every=timedelta(seconds=1), queue=QUEUE)]
