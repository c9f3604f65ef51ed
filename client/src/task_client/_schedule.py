"""When a call may start and until when: `countdown`/`eta`, `expires` and `priority`, checked once
and fixed at publication as absolute UTC times (Celery's `eta` and `expires` message headers).

No I/O here; shared by every facade, batches included.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ._errors import InvalidOptions

#: Celery's priority range on Redis (kombu keeps one list per step: 0, 3, 6 and 9; 0 is served first).
PRIORITY_RANGE = range(10)


def check_schedule(
    *,
    countdown: float | None = None,
    eta: dt.datetime | None = None,
    expires: float | dt.datetime | None = None,
    priority: int | None = None,
) -> None:
    """Raise `InvalidOptions` naming the option that is wrong; nothing is published then."""
    if countdown is not None and eta is not None:
        raise InvalidOptions("give countdown= (seconds from now) or eta= (an aware datetime), not both")
    if countdown is not None:
        _check_seconds("countdown", countdown, "seconds, zero or more", lambda value: value >= 0)
    if eta is not None:
        _check_aware("eta", eta)
    if expires is not None:
        if isinstance(expires, dt.datetime):
            _check_aware("expires", expires)
        else:
            _check_seconds(
                "expires", expires, "seconds from now (more than zero) or an aware datetime", lambda value: value > 0
            )
    if priority is not None and (
        not isinstance(priority, int) or isinstance(priority, bool) or priority not in PRIORITY_RANGE
    ):
        raise InvalidOptions(f"priority must be an int from 0 to 9 (on Redis 0 is served first), got {priority!r}")


def _check_seconds(option: str, value: Any, expected: str, in_range: Callable[[float], bool]) -> None:
    if not isinstance(value, int | float) or isinstance(value, bool) or not in_range(value):
        raise InvalidOptions(f"{option} must be {expected}, got {value!r}")
    try:  # NaN, infinity and 1e12 seconds name no date a message can carry
        utcnow() + dt.timedelta(seconds=value)
    except (OverflowError, ValueError):
        raise InvalidOptions(f"{option}={value!r:.40} seconds from now is no date (the latest is year 9999)") from None


def _check_aware(option: str, value: Any) -> None:
    if not isinstance(value, dt.datetime):
        raise InvalidOptions(f"{option} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidOptions(
            f"{option}={value!r} is a naive datetime: give it a time zone, e.g. "
            "datetime.now(timezone.utc) + timedelta(seconds=5), so that workers in other zones agree"
        )


@dataclass(frozen=True, slots=True)
class Schedule:
    """A published call's due time (`eta`), expiry and priority, as sent; None where not set."""

    eta: dt.datetime | None = None
    expires: dt.datetime | None = None
    priority: int | None = None

    @classmethod
    def resolve(
        cls,
        countdown: float | None,
        eta: dt.datetime | None,
        expires: float | dt.datetime | None,
        priority: int | None,
    ) -> Schedule | None:
        """The absolute schedule of a call published now (None when nothing is scheduled)."""
        if countdown is None and eta is None and expires is None and priority is None:
            return None
        now = utcnow()
        if countdown is not None:
            eta = now + dt.timedelta(seconds=countdown)
        if expires is not None and not isinstance(expires, dt.datetime):
            expires = now + dt.timedelta(seconds=expires)
        return cls(
            eta.astimezone(dt.UTC) if eta else None,
            expires.astimezone(dt.UTC) if expires else None,
            priority,
        )

    @classmethod
    def of(cls, message: Any) -> Schedule | None:
        """The schedule a published message (`Outgoing`) carries, or None."""
        if message.eta is None and message.expires is None and message.priority is None:
            return None
        return cls(message.eta, message.expires, message.priority)

    def due_in(self) -> float:
        """Seconds until the call is due (0 once due or when not scheduled)."""
        return max(0.0, (self.eta - utcnow()).total_seconds()) if self.eta else 0.0

    def expires_in(self) -> float | None:
        """Seconds until the call expires (0 once expired), or None without an expiry."""
        return max(0.0, (self.expires - utcnow()).total_seconds()) if self.expires else None

    def revoke_ttl(self, keep: float) -> int:
        """How long a cancel mark must last: until the call is due, then `keep` seconds more."""
        return int(self.due_in() + keep) + 1


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
