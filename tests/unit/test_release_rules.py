"""R1, R2 as pure rules."""

from datetime import date, datetime, time, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from guahao.clock import TZ, UTC
from guahao.errors import DomainError
from guahao.release.rules import ReleasePolicy, bookable_dates, check_bookable, release_instant


def err(fn, *a):
    try:
        fn(*a)
    except DomainError as e:
        return e.code
    return None


def test_release_instant_is_release_time_d_days_before():
    p = ReleasePolicy(time(7, 0), 7)
    assert release_instant(date(2026, 12, 9), p) == datetime(2026, 12, 2, 7, 0, tzinfo=TZ)
    assert release_instant(date(2026, 12, 9), p).tzinfo == UTC
    assert release_instant(date(2027, 3, 1), ReleasePolicy(time(15, 30), 90)) == \
        datetime(2026, 12, 1, 15, 30, tzinfo=TZ)


@pytest.mark.parametrize("days", [0, 91])
def test_window_must_be_1_to_90(days):
    with pytest.raises(ValueError):
        release_instant(date(2026, 12, 9), ReleasePolicy(time(7), days))


def test_a_second_before_and_at_the_instant():
    at = release_instant(date(2026, 12, 9), ReleasePolicy())
    assert err(check_bookable, at - timedelta(seconds=1), date(2026, 12, 9), time(8), at, False) == "NOT_RELEASED"
    assert err(check_bookable, at, date(2026, 12, 9), time(8), at, False) is None


def test_same_day_only_when_allowed_and_before_start():
    at = release_instant(date(2026, 12, 2), ReleasePolicy())
    morning = datetime(2026, 12, 2, 7, 59, tzinfo=TZ)
    assert err(check_bookable, morning, date(2026, 12, 2), time(8), at, False) == "OUT_OF_WINDOW"
    assert err(check_bookable, morning, date(2026, 12, 2), time(8), at, True) is None
    assert err(check_bookable, morning + timedelta(minutes=1), date(2026, 12, 2), time(8), at, True) == "OUT_OF_WINDOW"
    assert err(check_bookable, morning, date(2026, 12, 1), time(8), at, True) == "OUT_OF_WINDOW"


@given(st.dates(min_value=date(2026, 1, 1), max_value=date(2027, 12, 31)), st.integers(1, 90),
       st.times(), st.integers(0, 24 * 3600 - 1))
def test_bookable_dates_agree_with_release_instants(today, window, rel, secs):
    """The open range of R2 is exactly the dates whose release instant has passed."""
    rel = rel.replace(microsecond=0, tzinfo=None)
    p = ReleasePolicy(rel, window)
    now = datetime.combine(today, time(0), tzinfo=TZ) + timedelta(seconds=secs)
    first, last = bookable_dates(today, p, now.time())
    assert first == today + timedelta(days=1)
    for d in (last, last + timedelta(days=1)):
        released = now >= release_instant(d, p)
        assert released == (d <= last)
