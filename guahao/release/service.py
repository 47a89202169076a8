"""Per-hospital release, cancel, check-in and reminder settings (R1, R2, X1, V1, S1). Never commits.

Changing the release time or window moves the release instant of every session not yet released; what
is already open stays open."""

from dataclasses import dataclass, fields
from datetime import datetime, time

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from guahao.audit import service as audit
from guahao.catalog.models import Hospital
from guahao.errors import DomainError
from guahao.release.rules import ReleasePolicy, release_instant
from guahao.schedule.models import ClinicSession


@dataclass
class ReleaseSettings:
    release_time: time = time(7, 0)
    window_days: int = 7
    same_day_booking: bool = False
    cancel_deadline_time: time = time(15, 0)
    cancel_minutes_before: int | None = None
    checkin_lead_minutes: int = 60
    reminder_time: time = time(18, 0)


PLATFORM_DEFAULTS = ReleaseSettings()
NAMES = tuple(f.name for f in fields(ReleaseSettings))


def of(h: Hospital) -> ReleaseSettings:
    return ReleaseSettings(**{n: getattr(h, n) for n in NAMES})


def check(v: ReleaseSettings) -> None:
    if not 1 <= v.window_days <= 90:
        raise DomainError("VALIDATION_ERROR", "放号周期应为1–90天")
    if v.cancel_minutes_before is not None and not 0 <= v.cancel_minutes_before <= 7 * 24 * 60:
        raise DomainError("VALIDATION_ERROR", "取消截止（就诊前分钟数）应为0–10080")
    if not 0 <= v.checkin_lead_minutes <= 240:
        raise DomainError("VALIDATION_ERROR", "报到提前时间应为0–240分钟")
    for t in (v.release_time, v.cancel_deadline_time, v.reminder_time):
        if t.second or t.microsecond:
            raise DomainError("VALIDATION_ERROR", "时间精确到分钟")


def update_settings(s: Session, now: datetime, hospital: Hospital, changes: dict, actor: str,
                    ip: str | None = None) -> tuple[ReleaseSettings, int]:
    """Apply `changes` (a subset of NAMES); returns the new settings and how many unreleased sessions got
    a new release instant."""
    unknown = set(changes) - set(NAMES)
    if unknown:
        raise DomainError("VALIDATION_ERROR", f"未知的设置项：{', '.join(sorted(unknown))}")
    before = of(hospital)
    after = ReleaseSettings(**{**before.__dict__, **changes})
    check(after)
    for n in NAMES:
        setattr(hospital, n, getattr(after, n))
    s.flush()
    moved = 0
    if (after.release_time, after.window_days) != (before.release_time, before.window_days):
        moved = recompute_release(s, now, hospital)
    diff = {n: [str(getattr(before, n)), str(getattr(after, n))] for n in NAMES
            if getattr(before, n) != getattr(after, n)}
    audit.record(s, now, "staff", actor, "hospital.release_settings", "hospital", hospital.id,
                 {"changed": diff, "sessions_moved": moved}, hospital_id=hospital.id, ip=ip)
    return after, moved


def recompute_release(s: Session, now: datetime, hospital: Hospital) -> int:
    policy = ReleasePolicy(hospital.release_time, hospital.window_days, hospital.same_day_booking)
    rows = s.execute(select(ClinicSession.id, ClinicSession.visit_date).where(
        ClinicSession.hospital_id == hospital.id, ClinicSession.release_at > now)).all()
    by_date: dict = {}
    for sid, d in rows:
        by_date.setdefault(d, []).append(sid)
    for d, ids in by_date.items():
        s.execute(update(ClinicSession).where(ClinicSession.id.in_(ids))
                  .values(release_at=release_instant(d, policy)))
    return len(rows)
