"""L1–L6 limits and the X1 cancel deadline as pure rules."""

from datetime import date, datetime, time, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from guahao.booking.rules import (CancelPolicy, LimitPolicy, Visit, cancel_deadline, check_cancellable,
                                  check_limits, check_not_banned, max_in_any_window)
from guahao.clock import TZ
from guahao.errors import DomainError

D = date(2026, 12, 10)


def code(existing, new, policy=LimitPolicy()):
    try:
        check_limits(existing, new, policy)
    except DomainError as e:
        return e.code
    return None


def v(day_offset, dept=1, hosp=1):
    return Visit(hosp, dept, D + timedelta(days=day_offset))


def test_l1_same_department_same_day():
    assert code([v(0, dept=1)], v(0, dept=1)) == "DUPLICATE_DEPARTMENT_DAY"
    assert code([v(0, dept=1)], v(0, dept=2)) is None
    assert code([v(0, dept=1, hosp=1)], v(0, dept=1, hosp=2)) is None


def test_l2_two_per_day_across_hospitals():
    assert code([v(0, 1, 1), v(0, 2, 2)], v(0, 3, 3)) == "DAILY_LIMIT"


def test_l3_three_in_any_seven_days():
    assert code([v(0), v(3), v(6)], v(2, dept=2)) == "WEEKLY_LIMIT"
    # 7 days apart is a new window.
    assert code([v(0), v(3), v(6)], v(7)) is None
    assert code([v(0), v(3), v(6)], v(-1)) is None
    assert code([v(0), v(1)], v(6)) is None


def test_l4_five_in_any_ninety_days():
    existing = [v(0), v(10), v(20), v(30), v(89)]
    assert code(existing, v(45)) == "QUARTER_LIMIT"
    assert code([v(0), v(10), v(20), v(30)], v(89)) is None
    assert code(existing, v(90)) is None  # window 1..90 holds 10, 20, 30, 89 and the new one


def test_l6_policy_numbers_are_settings():
    loose = LimitPolicy(per_day=3, per_week=10, per_quarter=20)
    assert code([v(0, 1, 1), v(0, 2, 2)], v(0, 3, 3), loose) is None


def brute_force_ok(dates: list[date], policy: LimitPolicy) -> bool:
    """Reference: slide every window over the whole span."""
    if not dates:
        return True
    lo, hi = min(dates), max(dates)
    for days, cap in ((policy.week_days, policy.per_week), (policy.quarter_days, policy.per_quarter)):
        start = lo - timedelta(days=days)
        while start <= hi:
            end = start + timedelta(days=days - 1)
            if sum(1 for d in dates if start <= d <= end) > cap:
                return False
            start += timedelta(days=1)
    return all(dates.count(d) <= policy.per_day for d in dates)


@given(st.lists(st.integers(0, 200), max_size=12), st.integers(0, 200))
def test_windows_match_a_brute_force_reference(offsets, new_offset):
    policy = LimitPolicy(per_department_day=99)
    existing = []
    # Build a valid history by adding only what the rule accepts (as the service does).
    for o in offsets:
        if code(existing, Visit(1, len(existing), D + timedelta(days=o)), policy) is None:
            existing.append(Visit(1, len(existing), D + timedelta(days=o)))
    assert brute_force_ok([e.visit_date for e in existing], policy)
    new = Visit(1, 999, D + timedelta(days=new_offset))
    accepted = code(existing, new, policy) is None
    assert accepted == brute_force_ok([e.visit_date for e in existing] + [new.visit_date], policy)


@given(st.lists(st.dates(min_value=date(2026, 1, 1), max_value=date(2026, 12, 31)), max_size=20),
       st.dates(min_value=date(2026, 1, 1), max_value=date(2026, 12, 31)), st.integers(1, 120))
def test_max_in_any_window_counts_the_densest_window_containing_the_day(dates, around, days):
    got = max_in_any_window(dates, around, days)
    want = max(sum(1 for d in dates if s <= d <= s + timedelta(days=days - 1))
               for s in (around - timedelta(days=k) for k in range(days)))
    assert got == want


def test_cancel_deadline_default_is_1500_the_day_before():
    dl = cancel_deadline(date(2026, 12, 2), time(8, 0), CancelPolicy())
    assert dl == datetime(2026, 12, 1, 15, 0, tzinfo=TZ)
    check_cancellable(dl - timedelta(seconds=1), dl)
    with pytest.raises(DomainError) as e:
        check_cancellable(dl, dl)
    assert e.value.code == "CANCEL_DEADLINE_PASSED"


def test_cancel_deadline_hospital_variants():
    assert cancel_deadline(date(2026, 12, 2), time(8), CancelPolicy(time(14, 0))) == \
        datetime(2026, 12, 1, 14, 0, tzinfo=TZ)
    assert cancel_deadline(date(2026, 12, 2), time(13, 30), CancelPolicy(minutes_before=120)) == \
        datetime(2026, 12, 2, 11, 30, tzinfo=TZ)


def test_ban_blocks_until_its_end_date():
    check_not_banned(date(2026, 12, 1), None)
    with pytest.raises(DomainError) as e:
        check_not_banned(date(2026, 12, 1), date(2027, 3, 1))
    assert e.value.code == "BLACKLISTED" and "2027-03-01" in e.value.message
