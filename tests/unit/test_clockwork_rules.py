"""Pure rules of the clockwork: calendar (C3), templates, bans (N2), no-show close (N1), texts (S1), codes (A1)."""

from datetime import date, datetime, time, timedelta
from types import SimpleNamespace

import pytest

from guahao.attendance import rules as att
from guahao.clock import TZ, UTC
from guahao.errors import DomainError
from guahao.notifications import rules as msg
from guahao.schedule import calendar as cal
from guahao.schedule.rules import plan_days

# chinese-calendar 1.11: statutory holidays of 2026 (including the weekend days inside each holiday)…
HOLIDAYS_2026 = (
    ["2026-01-01", "2026-01-02", "2026-01-03"]
    + [f"2026-02-{d}" for d in range(15, 24)]
    + ["2026-04-04", "2026-04-05", "2026-04-06"]
    + [f"2026-05-0{d}" for d in range(1, 6)]
    + ["2026-06-19", "2026-06-20", "2026-06-21"]
    + ["2026-09-25", "2026-09-26", "2026-09-27"]
    + [f"2026-10-0{d}" for d in range(1, 8)]
)
# … and its make-up workdays (调休上班), all on weekends.
MAKEUP_2026 = ["2026-01-04", "2026-02-14", "2026-02-28", "2026-05-09", "2026-09-20", "2026-10-10"]


def _year(y: int):
    d, out = date(y, 1, 1), []
    while d.year == y:
        out.append(cal.day_info(d))
        d += timedelta(days=1)
    return out


def test_a_full_known_year_holidays_and_makeup_days():
    days = _year(2026)
    assert [str(i.day) for i in days if i.kind == cal.DayKind.HOLIDAY] == HOLIDAYS_2026
    assert [str(i.day) for i in days if i.kind == cal.DayKind.MAKEUP] == MAKEUP_2026
    assert {i.source for i in days} == {"chinese-calendar"}
    assert not any(i.warning for i in days)
    workdays = [i for i in days if i.kind == cal.DayKind.WORKDAY]
    weekend = [i for i in days if i.kind == cal.DayKind.WEEKEND]
    assert len(workdays) + len(MAKEUP_2026) == 365 - len(HOLIDAYS_2026) - len(weekend)
    assert all(i.day.weekday() < 5 for i in workdays) and all(i.day.weekday() >= 5 for i in weekend)
    assert cal.day_info(date(2026, 10, 1)).name == "National Day"


def test_unknown_year_falls_back_to_weekends_with_a_warning_never_a_crash():
    days = _year(2027)
    assert {i.source for i in days} == {"weekends"}
    assert all(i.warning and "2027" in i.warning for i in days)
    # New Year's Day 2027 is a Friday: unknown to the package, so a workday until an admin says otherwise.
    assert cal.day_info(date(2027, 1, 1)).kind == cal.DayKind.WORKDAY
    assert cal.day_info(date(2027, 1, 2)).kind == cal.DayKind.WEEKEND
    assert not cal.known_year(2027) and cal.known_year(2026)
    assert cal.is_workday(date(2027, 1, 1)) is True
    assert cal.is_workday(date(2028, 7, 8)) is False  # a Saturday, years ahead


def test_overrides_always_win_hospital_over_platform():
    nd = date(2026, 10, 2)
    platform = {nd: cal.Override(True, note="改为工作日"), date(2027, 1, 1): cal.Override(False, note="元旦")}
    assert cal.day_info(nd, platform).kind == cal.DayKind.WORKDAY
    assert cal.day_info(date(2027, 1, 1), platform).kind == cal.DayKind.HOLIDAY
    assert cal.day_info(date(2027, 1, 1), platform).warning is None
    hospital = {nd: cal.Override(False, note="院内停诊")}
    assert cal.day_info(nd, platform, hospital).kind == cal.DayKind.HOLIDAY
    sat = date(2027, 2, 20)  # an admin-entered make-up Saturday running Friday's pattern
    info = cal.day_info(sat, {sat: cal.Override(True, as_weekday=4)})
    assert info.kind == cal.DayKind.MAKEUP and cal.weekdays_running(info) == (4, 5)


def test_templates_plan_no_session_on_holiday_and_one_on_makeup_saturday():
    mon_am = SimpleNamespace(weekday=0, period="AM", number_type="专家号")
    wed_pm = SimpleNamespace(weekday=2, period="PM", number_type="普通号")
    sat_am = SimpleNamespace(weekday=5, period="AM", number_type="普通号")
    days = [cal.day_info(date(2026, 9, 28) + timedelta(days=i)) for i in range(16)]  # Mon 9-28 … Tue 10-13
    plan = [(str(d), t.weekday) for d, t in plan_days(days, [mon_am, wed_pm, sat_am])]
    assert ("2026-09-28", 0) in plan and ("2026-09-30", 2) in plan
    assert not [p for p in plan if "2026-10-01" <= p[0] <= "2026-10-07"]  # National Day week
    # 10-10 is a make-up Saturday: Monday's pattern runs, and the Saturday clinic too.
    assert sorted(p for p in plan if p[0] == "2026-10-10") == [("2026-10-10", 0), ("2026-10-10", 5)]
    assert ("2026-10-03", 5) not in plan  # a holiday Saturday has no weekend clinic either
    assert ("2026-10-17", 5) not in plan and ("2026-10-12", 0) in plan


def test_add_months_clips_to_month_end():
    assert att.add_months(date(2026, 3, 5), 3) == date(2026, 6, 5)
    assert att.add_months(date(2026, 11, 30), 3) == date(2027, 2, 28)
    assert att.add_months(date(2026, 12, 20), 6) == date(2027, 6, 20)
    assert att.add_months(date(2027, 8, 31), 6) == date(2028, 2, 29)


def test_ban_tiers_three_and_six_per_calendar_year():
    days = [date(2026, 2, 1), date(2026, 5, 3), date(2026, 12, 30)]
    (d,) = att.bans_due(days, 2026, set())
    assert (d.strikes, d.starts_on, d.ends_on, d.months) == (3, date(2026, 12, 30), date(2027, 3, 30), 3)
    assert att.bans_due(days, 2026, {3}) == []
    six = days + [date(2026, 12, 31), date(2026, 12, 31), date(2026, 12, 31)]
    got = att.bans_due(six, 2026, {3})
    assert [(b.strikes, b.ends_on) for b in got] == [(6, date(2027, 6, 30))]
    # Counting restarts on 1 January: two in late 2026 and one in early 2027 earn nothing.
    cross = [date(2026, 12, 30), date(2026, 12, 31), date(2027, 1, 2)]
    assert att.bans_due(cross, 2026, set()) == [] and att.bans_due(cross, 2027, set()) == []
    policy = att.NoShowPolicy(tiers=((2, 1),))
    assert att.bans_due(cross, 2026, set(), policy)[0].ends_on == date(2027, 1, 31)


def test_check_in_closes_at_the_end_of_the_period():
    closes = att.checkin_closes_at(date(2026, 12, 31), time(12, 0))
    assert closes == datetime(2026, 12, 31, 12, 0, tzinfo=TZ).astimezone(UTC)


FACTS = msg.BookingFacts("王小明", "北京协和医院", "心血管内科", "李明", date(2026, 12, 2), "AM", time(8, 30),
                         time(9, 0), 3, "2612020000001234", "门诊楼2层分诊台", "专家号")


def test_message_texts_carry_the_fields_of_s1():
    text = msg.booking_confirmed(FACTS)
    for part in ("北京协和医院", "心血管内科", "李明医生", "2026年12月02日", "周三", "上午", "08:30", "3号",
                 "2612020000001234", "门诊楼2层分诊台"):
        assert part in text
    assert "明天" in msg.reminder(FACTS, 60) and "60分钟" in msg.reminder(FACTS, 60)
    assert "停诊" in msg.session_stopped(FACTS, "医生外出会诊") and "全额退还" in msg.session_stopped(FACTS, "x")
    assert "候补成功" in msg.waitlist_filled(FACTS) and "已取消" in msg.booking_cancelled(FACTS)
    assert "2027年03月29日" in msg.banned("王小明", 3, 2026, date(2027, 3, 30))
    assert "123456" in msg.sms_code_text("123456", "signup")


def test_sms_code_limits():
    p = msg.CodePolicy()
    now = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
    msg.check_may_send(now, None, 0, p)
    msg.check_may_send(now, now - timedelta(seconds=60), 9, p)
    with pytest.raises(DomainError) as e:
        msg.check_may_send(now, now - timedelta(seconds=59), 1, p)
    assert e.value.code == "RATE_LIMITED" and e.value.details["retry_after"] == 1
    with pytest.raises(DomainError):
        msg.check_may_send(now, now - timedelta(hours=1), 10, p)
    assert msg.code_state(now, now, False, False) == "expired"
    assert msg.code_state(now, now + timedelta(seconds=1), False, False) == "usable"
    assert len(msg.new_code()) == 6 and msg.new_code().isdigit()
