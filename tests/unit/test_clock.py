from datetime import datetime, timedelta

import time_machine

from guahao.clock import TZ, UTC, StartedClock, SystemClock, clock_from_setting, local_today


def test_started_clock_starts_at_the_instant_and_runs_forward():
    c = clock_from_setting("2026-12-01T06:59:58+08:00")
    assert isinstance(c, StartedClock)
    first = c.now()
    assert first.tzinfo == UTC
    assert timedelta(0) <= first - datetime(2026, 12, 1, 6, 59, 58, tzinfo=TZ) < timedelta(seconds=2)
    assert c.now() >= first


def test_naive_setting_means_shanghai_time():
    c = clock_from_setting("2026-12-01T07:00:00")
    assert local_today(c).isoformat() == "2026-12-01"
    assert c.now().astimezone(TZ).hour == 7


def test_system_clock_follows_time_machine():
    with time_machine.travel(datetime(2027, 1, 1, 0, 0, tzinfo=TZ), tick=False):
        assert SystemClock().now() == datetime(2026, 12, 31, 16, 0, tzinfo=UTC)
        assert local_today(SystemClock()).isoformat() == "2027-01-01"
