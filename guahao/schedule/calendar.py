"""Working days in mainland China (RULES C3): statutory holidays off, make-up workdays (调休) on.

Sources, strongest first: a hospital's own closure/override, a platform admin's override, chinese-calendar
(knows statutory holidays and make-up days up to its last published year), and for a year it does not know:
plain weekends, with a warning. Pure: overrides are passed in, nothing here reads the database.
"""

import logging
from dataclasses import dataclass
from datetime import date
from enum import StrEnum

import chinese_calendar

log = logging.getLogger(__name__)
_warned: set[str] = set()


def warn_once(message: str) -> None:
    if message not in _warned:
        _warned.add(message)
        log.warning("calendar: %s", message)


class DayKind(StrEnum):
    WORKDAY = "workday"  # Monday–Friday, clinics as usual
    MAKEUP = "makeup"  # a weekend day declared a workday (调休上班)
    WEEKEND = "weekend"  # an ordinary Saturday/Sunday: only weekend templates run
    HOLIDAY = "holiday"  # statutory holiday or a declared closure: no regular sessions


@dataclass(frozen=True)
class Override:
    is_workday: bool
    as_weekday: int | None = None  # a make-up day runs the pattern of this weekday (default Monday)
    note: str = ""


@dataclass(frozen=True)
class DayInfo:
    day: date
    kind: DayKind
    source: str  # hospital | platform | chinese-calendar | weekends
    name: str | None = None  # e.g. "National Day"
    pattern_weekday: int | None = None  # which weekday's templates run this day
    warning: str | None = None


MAKEUP_WEEKDAY = 0  # Monday: the default pattern a make-up weekend day runs


def fallback_warning(year: int) -> str:
    return (f"日历包尚未收录{year}年的法定节假日与调休安排：{year}年暂按周末休息处理，"
            f"请平台管理员录入{year}年的节假日与调休（日历覆盖）")


def _from_override(d: date, o: Override, source: str) -> DayInfo:
    if not o.is_workday:
        return DayInfo(d, DayKind.HOLIDAY, source, o.note or None)
    if d.weekday() < 5:
        return DayInfo(d, DayKind.WORKDAY, source, o.note or None, o.as_weekday if o.as_weekday is not None
                       else d.weekday())
    return DayInfo(d, DayKind.MAKEUP, source, o.note or None,
                   o.as_weekday if o.as_weekday is not None else MAKEUP_WEEKDAY)


def day_info(d: date, platform: dict[date, Override] | None = None,
             hospital: dict[date, Override] | None = None) -> DayInfo:
    """What kind of day `d` is, and which weekday's pattern runs on it."""
    if hospital and d in hospital:
        return _from_override(d, hospital[d], "hospital")
    if platform and d in platform:
        return _from_override(d, platform[d], "platform")
    try:
        on_holiday, name = chinese_calendar.get_holiday_detail(d)
    except NotImplementedError:
        warning = fallback_warning(d.year)
        if d.weekday() >= 5:
            return DayInfo(d, DayKind.WEEKEND, "weekends", None, d.weekday(), warning)
        return DayInfo(d, DayKind.WORKDAY, "weekends", None, d.weekday(), warning)
    if on_holiday and name is not None:
        return DayInfo(d, DayKind.HOLIDAY, "chinese-calendar", name)
    if on_holiday:
        return DayInfo(d, DayKind.WEEKEND, "chinese-calendar", None, d.weekday())
    if d.weekday() >= 5:
        return DayInfo(d, DayKind.MAKEUP, "chinese-calendar", name, MAKEUP_WEEKDAY)
    return DayInfo(d, DayKind.WORKDAY, "chinese-calendar", None, d.weekday())


def is_workday(d: date, overrides: dict[date, bool] | None = None) -> bool:
    """True when regular (Monday–Friday style) clinic sessions run on `d`."""
    platform = {k: Override(v) for k, v in (overrides or {}).items()}
    info = day_info(d, platform)
    if info.warning:
        warn_once(info.warning)
    return info.kind in (DayKind.WORKDAY, DayKind.MAKEUP)


def known_year(year: int) -> bool:
    try:
        chinese_calendar.is_workday(date(year, 6, 1))
        return True
    except NotImplementedError:
        return False


def source_for(d: date) -> str:
    return day_info(d).source


def weekdays_running(info: DayInfo) -> tuple[int, ...]:
    """The template weekdays that generate sessions on this day."""
    if info.kind == DayKind.HOLIDAY:
        return ()
    if info.kind == DayKind.MAKEUP:
        # Its own weekend templates too: a hospital with Saturday clinics keeps them on a make-up Saturday.
        return tuple(dict.fromkeys((info.pattern_weekday, info.day.weekday())))
    return (info.pattern_weekday if info.pattern_weekday is not None else info.day.weekday(),)
