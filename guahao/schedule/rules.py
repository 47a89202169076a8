"""Clinic sessions and their numbered slots (RULES C2), pure."""

from datetime import date, datetime, time, timedelta

PERIODS: dict[str, tuple[time, time]] = {"AM": (time(8, 0), time(12, 0)), "PM": (time(13, 30), time(17, 0))}
PERIOD_LABELS = {"AM": "上午", "PM": "下午"}
NUMBER_TYPES = ("普通号", "专家号", "特需号")
TITLES = ("主任医师", "副主任医师", "主治医师", "医师")
BLOCK_MINUTES = 30


def _add(t: time, minutes: int) -> time:
    return (datetime.combine(date(2000, 1, 1), t) + timedelta(minutes=minutes)).time()


def _minutes(t: time) -> int:
    return t.hour * 60 + t.minute


def slot_periods(start: time, end: time, capacity: int) -> list[tuple[int, time, time]]:
    """Sequence numbers 1..capacity spread evenly over the session's 30-minute blocks."""
    if capacity < 1:
        raise ValueError("capacity must be positive")
    total = _minutes(end) - _minutes(start)
    blocks = max(1, total // BLOCK_MINUTES)
    out = []
    for seq in range(1, capacity + 1):
        b = (seq - 1) * blocks // capacity
        s = _add(start, b * BLOCK_MINUTES)
        e = _add(start, min(total, (b + 1) * BLOCK_MINUTES))
        out.append((seq, s, e))
    return out


WEEKDAY_LABELS = ("周一", "周二", "周三", "周四", "周五", "周六", "周日")


def check_template(weekday: int, period: str, number_type: str, capacity: int, fee: int) -> None:
    from guahao.errors import DomainError

    if not 0 <= weekday <= 6:
        raise DomainError("VALIDATION_ERROR", "星期应为0（周一）到6（周日）")
    if period not in PERIODS:
        raise DomainError("VALIDATION_ERROR", "时段应为 AM（上午）或 PM（下午）")
    if number_type not in NUMBER_TYPES:
        raise DomainError("VALIDATION_ERROR", "号别应为普通号、专家号或特需号")
    if not 1 <= capacity <= 500:
        raise DomainError("VALIDATION_ERROR", "号源数量应为1–500")
    if not 0 <= fee <= 10_000_000:
        raise DomainError("VALIDATION_ERROR", "挂号费（分）不正确")


def plan_days(days, templates) -> list[tuple[date, object]]:
    """(day, template) pairs to generate: each day runs the templates of the weekdays its calendar entry
    names (C3: none on a holiday, Monday's pattern on a make-up Saturday unless told otherwise).

    `days` are calendar.DayInfo, `templates` anything with .weekday, .period, .number_type."""
    from guahao.schedule.calendar import weekdays_running

    out = []
    for info in days:
        seen = set()
        for wd in weekdays_running(info):
            for t in templates:
                key = (t.period, t.number_type)
                if t.weekday == wd and key not in seen:
                    seen.add(key)
                    out.append((info.day, t))
    return out
