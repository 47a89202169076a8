"""Staff side of schedules: weekly templates, calendar overrides, generating sessions for the window, and
stopping a session (C2, C3). Never commits."""

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from guahao.audit import service as audit
from guahao.booking.models import Booking
from guahao.catalog.models import Doctor, Hospital
from guahao.clock import local
from guahao.errors import DomainError
from guahao.release.rules import ReleasePolicy, release_instant
from guahao.schedule import calendar, hooks, rules
from guahao.schedule.models import CalendarOverride, ClinicSession, ScheduleTemplate, Slot


# --- templates -------------------------------------------------------------------------------------------

def set_template(s: Session, now: datetime, doctor: Doctor, weekday: int, period: str, number_type: str,
                 capacity: int, fee: int, online_bookable: bool = True) -> ScheduleTemplate:
    """Create or replace one cell of a doctor's weekly pattern."""
    rules.check_template(weekday, period, number_type, capacity, fee)
    t = s.scalar(select(ScheduleTemplate).where(
        ScheduleTemplate.doctor_id == doctor.id, ScheduleTemplate.weekday == weekday,
        ScheduleTemplate.period == period, ScheduleTemplate.number_type == number_type))
    if t is None:
        t = ScheduleTemplate(hospital_id=doctor.hospital_id, department_id=doctor.department_id,
                             doctor_id=doctor.id, weekday=weekday, period=period, number_type=number_type,
                             created_at=now)
        s.add(t)
    t.capacity, t.fee, t.online_bookable, t.active = capacity, fee, online_bookable, True
    s.flush()
    return t


def remove_template(s: Session, template: ScheduleTemplate) -> None:
    # Kept, not deleted: sessions already generated from it stay as they are.
    template.active = False


def templates_of(s: Session, hospital_id: int, doctor_id: int | None = None) -> list[ScheduleTemplate]:
    q = select(ScheduleTemplate).where(ScheduleTemplate.hospital_id == hospital_id, ScheduleTemplate.active)
    if doctor_id is not None:
        q = q.where(ScheduleTemplate.doctor_id == doctor_id)
    return list(s.scalars(q.order_by(ScheduleTemplate.doctor_id, ScheduleTemplate.weekday,
                                     ScheduleTemplate.period, ScheduleTemplate.id)))


# --- calendar overrides ----------------------------------------------------------------------------------

def set_override(s: Session, now: datetime, actor: str, day: date, is_workday: bool,
                 hospital_id: int | None = None, as_weekday: int | None = None, note: str = "") -> CalendarOverride:
    if as_weekday is not None and not 0 <= as_weekday <= 6:
        raise DomainError("VALIDATION_ERROR", "as_weekday 应为0–6")
    if hospital_id is not None and s.get(Hospital, hospital_id) is None:
        raise DomainError("NOT_FOUND", "未找到该医院")
    o = s.scalar(select(CalendarOverride).where(
        CalendarOverride.day == day,
        CalendarOverride.hospital_id.is_(None) if hospital_id is None else CalendarOverride.hospital_id == hospital_id))
    if o is None:
        o = CalendarOverride(day=day, hospital_id=hospital_id, created_by=actor, created_at=now)
        s.add(o)
    o.is_workday, o.as_weekday, o.note, o.created_by = is_workday, as_weekday, note[:100], actor
    s.flush()
    return o


def remove_override(s: Session, day: date, hospital_id: int | None = None) -> bool:
    o = s.scalar(select(CalendarOverride).where(
        CalendarOverride.day == day,
        CalendarOverride.hospital_id.is_(None) if hospital_id is None else CalendarOverride.hospital_id == hospital_id))
    if o is None:
        return False
    s.delete(o)
    s.flush()
    return True


def overrides(s: Session, start: date, end: date, hospital_id: int | None = None):
    """(platform, hospital) override maps for the dates start..end."""
    rows = s.scalars(select(CalendarOverride).where(CalendarOverride.day.between(start, end)))
    platform, own = {}, {}
    for o in rows:
        target = platform if o.hospital_id is None else (own if o.hospital_id == hospital_id else None)
        if target is not None:
            target[o.day] = calendar.Override(o.is_workday, o.as_weekday, o.note)
    return platform, own


def calendar_days(s: Session, start: date, end: date, hospital_id: int | None = None) -> list[calendar.DayInfo]:
    platform, own = overrides(s, start, end, hospital_id)
    out, d = [], start
    while d <= end:
        out.append(calendar.day_info(d, platform, own))
        d += timedelta(days=1)
    return out


# --- generating sessions ---------------------------------------------------------------------------------

@dataclass
class Generated:
    sessions: int = 0
    slots: int = 0
    skipped_existing: int = 0
    holidays: list[date] = field(default_factory=list)
    makeup_days: list[date] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def generate(s: Session, now: datetime, hospital: Hospital, start: date | None = None, end: date | None = None,
             doctor_id: int | None = None) -> Generated:
    """Sessions and numbered slots from the hospital's templates for start..end (default: tomorrow through
    the end of the booking window). Existing sessions are left alone, so running it twice adds nothing."""
    today = local(now).date()
    start = start or today + timedelta(days=1)
    end = end or today + timedelta(days=hospital.window_days)
    if end < start or (end - start).days > 120:
        raise DomainError("VALIDATION_ERROR", "生成范围应为1–120天")
    result = Generated()
    days = calendar_days(s, start, end, hospital.id)
    for info in days:
        if info.kind == calendar.DayKind.HOLIDAY:
            result.holidays.append(info.day)
        elif info.kind == calendar.DayKind.MAKEUP:
            result.makeup_days.append(info.day)
        if info.warning and info.warning not in result.warnings:
            result.warnings.append(info.warning)
    templates = templates_of(s, hospital.id, doctor_id)
    by_doctor: dict[int, list[ScheduleTemplate]] = {}
    for t in templates:
        by_doctor.setdefault(t.doctor_id, []).append(t)
    have = set(s.execute(select(ClinicSession.doctor_id, ClinicSession.visit_date, ClinicSession.period,
                                ClinicSession.number_type).where(
        ClinicSession.hospital_id == hospital.id, ClinicSession.visit_date.between(start, end))).all())
    policy = ReleasePolicy(hospital.release_time, hospital.window_days, hospital.same_day_booking)
    rows = []
    for doc_id, cells in by_doctor.items():
        for day, t in rules.plan_days(days, cells):
            key = (doc_id, day, t.period, t.number_type)
            if key in have:
                result.skipped_existing += 1
                continue
            have.add(key)
            st, en = rules.PERIODS[t.period]
            rows.append(dict(hospital_id=hospital.id, department_id=t.department_id, doctor_id=doc_id,
                             visit_date=day, period=t.period, starts_at=st, ends_at=en,
                             number_type=t.number_type, fee=t.fee, capacity=t.capacity, booked=0,
                             status="open", online_bookable=t.online_bookable,
                             release_at=release_instant(day, policy)))
    result.sessions, result.slots = insert_sessions(s, rows)
    return result


def insert_sessions(s: Session, rows: list[dict]) -> tuple[int, int]:
    """Insert sessions with their slots (C2); returns (sessions, slots)."""
    n_slots = 0
    for i in range(0, len(rows), 2000):
        chunk = rows[i:i + 2000]
        ids = s.execute(insert(ClinicSession).returning(ClinicSession.id, ClinicSession.starts_at,
                                                        ClinicSession.ends_at, ClinicSession.capacity),
                        chunk).all()
        slot_rows = [dict(session_id=cid, seq=seq, starts_at=a, ends_at=b)
                     for cid, st, en, cap in ids for seq, a, b in rules.slot_periods(st, en, cap)]
        for j in range(0, len(slot_rows), 5000):
            s.execute(insert(Slot), slot_rows[j:j + 5000])
        n_slots += len(slot_rows)
    return len(rows), n_slots


# --- stopping a session (停诊) ----------------------------------------------------------------------------

def stop_session(s: Session, now: datetime, session: ClinicSession, actor: str, reason: str,
                 ip: str | None = None) -> list[int]:
    """Stop a session: every active booking becomes `stopped`, each patient is notified, and the refund
    hook is called per booking (C3, X2: always a full refund). Returns the stopped booking ids."""
    from guahao.notifications import service as notify
    from guahao.waitlist import service as waitlist

    if session.status == "stopped":
        raise DomainError("SESSION_STOPPED", "该出诊已停诊")
    reason = (reason or "").strip()[:80] or "医生停诊"
    session.status = "stopped"
    # Written before the bookings are listed, not left to autoflush: the session row's lock waits for the
    # bookings under way (each takes the session's place on that row), and every booking after it finds
    # the session stopped.
    s.flush()
    ids = list(s.scalars(select(Booking.id).where(
        Booking.session_id == session.id, Booking.status.in_(("booked", "checked_in"))).with_for_update()))
    if ids:
        s.execute(update(Booking).where(Booking.id.in_(ids)).values(
            status="stopped", cancelled_at=now, cancel_reason=f"stopped: {reason}"[:100]))
    session.booked = 0
    s.flush()
    for bid in ids:
        notify.session_stopped(s, now, bid, reason)
        hooks.on_booking_stopped(s, now, bid)
    waitlist.close_session(s, now, session.id)
    audit.record(s, now, "staff", actor, "session.stop", "clinic_session", session.id,
                 {"reason": reason, "bookings": len(ids)}, hospital_id=session.hospital_id, ip=ip)
    return ids




def generate_windows(s: Session, now: datetime, extra_days: int = 1) -> int:
    """The worker keeps every hospital's booking window filled from its templates: as each day passes,
    the new last day of the window (plus `extra_days`, so sessions exist before their release instant)
    gets its sessions. Hospitals are locked one at a time so concurrent workers do not collide."""
    today = local(now).date()
    ids = list(s.scalars(select(ScheduleTemplate.hospital_id).where(ScheduleTemplate.active).distinct()))
    made = 0
    for hid in sorted(ids):
        h = s.get(Hospital, hid, with_for_update=True)
        r = generate(s, now, h, today + timedelta(days=1), today + timedelta(days=h.window_days + extra_days))
        for w in r.warnings:
            calendar.warn_once(w)
        made += r.sessions
    return made
