"""Per-person booking limits (RULES L1–L6) and the cancel deadline (X1), as pure functions."""

from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from guahao.clock import at_local, local
from guahao.errors import DomainError


@dataclass(frozen=True)
class LimitPolicy:
    """L6: one policy object; a deployment may change the numbers."""

    per_department_day: int = 1
    per_day: int = 2
    per_week: int = 3
    week_days: int = 7
    per_quarter: int = 5
    quarter_days: int = 90


@dataclass(frozen=True)
class Visit:
    hospital_id: int
    department_id: int
    visit_date: date


def max_in_any_window(dates: list[date], around: date, days: int) -> int:
    """The most of `dates` that fall in any `days` consecutive days containing `around`."""
    # It runs for every booking, so no walk over all 90 windows: the densest window either starts on a
    # date (if that date is not after `around`) or ends on one (if not before), so only those are counted.
    pivot = around.toordinal()
    near = sorted(o for o in (d.toordinal() for d in dates) if pivot - days < o < pivot + days)
    starts = [o for o in near if o <= pivot] + [o - days + 1 for o in near if o >= pivot]
    return max((bisect_right(near, s + days - 1) - bisect_left(near, s) for s in starts), default=0)


def check_limits(existing: list[Visit], new: Visit, policy: LimitPolicy = LimitPolicy()) -> None:
    """Raise the first limit the new booking would break; `existing` are the person's active bookings."""
    same_dept = [
        v for v in existing
        if v.visit_date == new.visit_date and v.hospital_id == new.hospital_id
        and v.department_id == new.department_id
    ]
    if len(same_dept) + 1 > policy.per_department_day:
        raise DomainError("DUPLICATE_DEPARTMENT_DAY")
    dates = [v.visit_date for v in existing] + [new.visit_date]
    if sum(1 for d in dates if d == new.visit_date) > policy.per_day:
        raise DomainError("DAILY_LIMIT", f"同一就诊人同一就诊日最多预约{policy.per_day}个号")
    if max_in_any_window(dates, new.visit_date, policy.week_days) > policy.per_week:
        raise DomainError(
            "WEEKLY_LIMIT", f"同一就诊人任意连续{policy.week_days}日内最多预约{policy.per_week}个号"
        )
    if max_in_any_window(dates, new.visit_date, policy.quarter_days) > policy.per_quarter:
        raise DomainError(
            "QUARTER_LIMIT", f"同一就诊人任意连续{policy.quarter_days}日内最多预约{policy.per_quarter}个号"
        )


def limit_span(policy: LimitPolicy) -> int:
    """How many days either side of a visit date can affect its limits."""
    return max(policy.week_days, policy.quarter_days) - 1


@dataclass(frozen=True)
class CancelPolicy:
    deadline_time: time = time(15, 0)  # on the day before the visit
    minutes_before: int | None = None  # or: this many minutes before the booked period starts


def cancel_deadline(visit_date: date, period_start: time, policy: CancelPolicy) -> datetime:
    if policy.minutes_before is not None:
        return at_local(visit_date, period_start) - timedelta(minutes=policy.minutes_before)
    return at_local(visit_date - timedelta(days=1), policy.deadline_time)


def check_cancellable(now: datetime, deadline: datetime) -> None:
    """Cancelling is allowed strictly before the deadline (X1)."""
    if now >= deadline:
        raise DomainError(
            "CANCEL_DEADLINE_PASSED", f"取消截止时间为{local(deadline):%Y-%m-%d %H:%M}，已过，不能在线取消"
        )


def check_not_banned(today: date, ban_ends_on: date | None) -> None:
    if ban_ends_on is not None and today < ban_ends_on:
        raise DomainError(
            "BLACKLISTED",
            f"因爽约次数过多，暂停预约至{ban_ends_on - timedelta(days=1):%Y-%m-%d}，{ban_ends_on:%Y-%m-%d}起可再预约",
            ban_ends_on=ban_ends_on.isoformat(),
        )
