"""Working days in mainland China (RULES C3): statutory holidays off, make-up workdays (调休) on.

Sources, in order: an admin's per-date override; chinese-calendar (knows holidays and make-up days up to
its last year); the `holidays` package (statutory days only); plain weekends, with a warning.
"""

import logging
from datetime import date

import chinese_calendar
import holidays

log = logging.getLogger(__name__)
_warned: set[int] = set()


def source_for(d: date) -> str:
    try:
        chinese_calendar.is_workday(d)
        return "chinese-calendar"
    except NotImplementedError:
        pass
    return "holidays" if d in holidays.China(years=d.year) or _holidays_knows(d.year) else "weekends"


def _holidays_knows(year: int) -> bool:
    return len(holidays.China(years=year)) > 0


def is_workday(d: date, overrides: dict[date, bool] | None = None) -> bool:
    """True when regular clinic sessions run on `d`."""
    if overrides and d in overrides:
        return overrides[d]
    try:
        return chinese_calendar.is_workday(d)
    except NotImplementedError:
        pass
    if d.year not in _warned:
        _warned.add(d.year)
        log.warning("calendar: chinese-calendar does not know %s; using the holidays package and weekends, "
                    "make-up workdays must be entered as overrides", d.year)
    if d in holidays.China(years=d.year):
        return False
    return d.weekday() < 5
