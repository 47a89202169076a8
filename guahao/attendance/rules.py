"""No-shows (N1) and the bans they earn (N2), pure."""

import calendar as _cal
from dataclasses import dataclass
from datetime import date, datetime, time

from guahao.clock import at_local


@dataclass(frozen=True)
class NoShowPolicy:
    """N2: the n-th no-show of a calendar year bans booking for m months from that day (a policy setting)."""

    tiers: tuple[tuple[int, int], ...] = ((3, 3), (6, 6))


def add_months(d: date, months: int) -> date:
    """Same day-of-month `months` later; clipped to the month's last day (Nov 30 + 3 → Feb 28/29)."""
    m = d.month - 1 + months
    y, m = d.year + m // 12, m % 12 + 1
    return date(y, m, min(d.day, _cal.monthrange(y, m)[1]))


def checkin_closes_at(visit_date: date, session_end: time) -> datetime:
    """V1/N1: check-in closes at the end of the booked half-day period; after that a booking that was not
    checked in is a no-show. The session's end is used (not the slot's 30-minute block), so no booking is
    marked while any check-in desk may still accept it."""
    return at_local(visit_date, session_end)


@dataclass(frozen=True)
class BanDecision:
    strikes: int  # the tier reached: 3 or 6
    year: int
    starts_on: date
    ends_on: date  # first day the person may book again
    months: int


def bans_due(no_show_dates: list[date], year: int, already_granted: set[int],
             policy: NoShowPolicy = NoShowPolicy()) -> list[BanDecision]:
    """Bans owed for one person's no-shows of `year` (counting restarts each calendar year; a ban that
    runs into the next year keeps running). The ban starts on the day of the no-show that reached the
    tier."""
    days = sorted(d for d in no_show_dates if d.year == year)
    out = []
    for strikes, months in policy.tiers:
        if len(days) >= strikes and strikes not in already_granted:
            start = days[strikes - 1]
            out.append(BanDecision(strikes, year, start, add_months(start, months), months))
    return out
