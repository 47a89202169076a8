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
