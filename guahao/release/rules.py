"""When a session opens for booking (RULES R1, R2)."""

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from guahao.clock import at_local, local
from guahao.errors import DomainError


@dataclass(frozen=True)
class ReleasePolicy:
    release_time: time = time(7, 0)
    window_days: int = 7  # D, 1–90
    same_day_booking: bool = False


def release_instant(visit_date: date, policy: ReleasePolicy) -> datetime:
    """At the release time on day X the sessions of day X+D open (R1)."""
    if not 1 <= policy.window_days <= 90:
        raise ValueError("window_days must be 1–90")
    opens_on = visit_date - timedelta(days=policy.window_days)
    return at_local(opens_on, policy.release_time)


def check_bookable(
    now: datetime, visit_date: date, session_start: time, release_at: datetime, same_day_booking: bool
) -> None:
    """Raise unless a session of `visit_date` starting at `session_start` may be booked at `now` (R1, R2)."""
    if now < release_at:
        raise DomainError(
            "NOT_RELEASED",
            f"该号源将于{local(release_at):%Y-%m-%d %H:%M}放号",
            release_at=release_at.isoformat(),
        )
    today = local(now).date()
    if visit_date < today:
        raise DomainError("OUT_OF_WINDOW", "该日期已过，不能预约")
    if visit_date == today:
        if not same_day_booking:
            raise DomainError("OUT_OF_WINDOW", "不支持预约当日号，请预约明天及以后的号源")
        if now >= at_local(visit_date, session_start):
            raise DomainError("OUT_OF_WINDOW", "该出诊已开始，不能再预约")


def bookable_dates(today: date, policy: ReleasePolicy, now_time: time) -> tuple[date, date]:
    """The first and last visit date open for booking right now (R2)."""
    first = today if policy.same_day_booking else today + timedelta(days=1)
    last = today + timedelta(days=policy.window_days)
    if now_time < policy.release_time:
        last -= timedelta(days=1)
    return first, last
