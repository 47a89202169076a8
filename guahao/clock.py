"""The one source of time. Domain code receives instants; it never asks the system."""

import time
from datetime import date, datetime, timezone
from typing import Protocol
from zoneinfo import ZoneInfo

TZ = ZoneInfo("Asia/Shanghai")
UTC = timezone.utc


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class StartedClock:
    """Starts at a given instant and runs forward with real time (GUAHAO_NOW)."""

    def __init__(self, start: datetime, anchor: float | None = None):
        if start.tzinfo is None:
            start = start.replace(tzinfo=TZ)
        self._start = start.astimezone(UTC)
        # With an anchor (the Unix time at which the clock reads `start`) all server processes agree.
        self._anchor = anchor
        self._t0 = time.monotonic()

    def now(self) -> datetime:
        from datetime import timedelta

        if self._anchor is not None:
            return self._start + timedelta(seconds=time.time() - self._anchor)
        return self._start + timedelta(seconds=time.monotonic() - self._t0)


class FixedClock:
    """A clock that moves only when told to; for scripts and pure tests."""

    def __init__(self, at: datetime):
        self.at = at if at.tzinfo else at.replace(tzinfo=TZ)

    def now(self) -> datetime:
        return self.at


def clock_from_setting(now: str | None, anchor: float | None = None) -> Clock:
    if not now:
        return SystemClock()
    return StartedClock(datetime.fromisoformat(now), anchor)


def local(dt: datetime) -> datetime:
    return dt.astimezone(TZ)


def local_today(clock: Clock) -> date:
    return local(clock.now()).date()


def at_local(d: date, t) -> datetime:
    """The instant of local date `d` at local time-of-day `t`, as UTC."""
    return datetime.combine(d, t, tzinfo=TZ).astimezone(UTC)
