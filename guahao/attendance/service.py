"""The no-show sweep (N1), bans (N2) and lifting a ban (logged). Never commits."""

from datetime import date, datetime, timedelta

from sqlalchemy import extract, select, update
from sqlalchemy.orm import Session

from guahao.accounts.models import Ban, Patient, Person
from guahao.attendance import rules
from guahao.attendance.models import BanGrant
from guahao.audit import service as audit
from guahao.booking.models import Booking
from guahao.booking.repository import lock_person
from guahao.clock import local
from guahao.errors import DomainError
from guahao.notifications import rules as texts
from guahao.notifications.service import enqueue
from guahao.schedule.models import ClinicSession

B = Booking.__table__


def sweep_no_shows(s: Session, now: datetime, policy: rules.NoShowPolicy = rules.NoShowPolicy(),
                   lookback_days: int = 400) -> tuple[int, int]:
    """Mark every `booked` booking whose check-in has closed as `no_show`, then grant the bans owed.
    Returns (no-shows marked, bans granted). Safe to run any number of times, in several workers; a worker
    that was down for months catches up (the look-back spans more than a calendar year)."""
    today = local(now).date()
    candidates = s.execute(
        select(Booking.id, Booking.person_id, Booking.visit_date, ClinicSession.ends_at)
        .join(ClinicSession, ClinicSession.id == Booking.session_id)
        .where(Booking.status == "booked", Booking.visit_date.between(today - timedelta(days=lookback_days), today))
        .order_by(Booking.id)).all()
    marked_people: set[tuple[int, int]] = set()
    marked = 0
    for bid, person_id, visit_date, ends_at in candidates:
        if now < rules.checkin_closes_at(visit_date, ends_at):
            continue
        # Conditional: a check-in at the last moment, or another worker, wins over this sweep.
        res = s.execute(update(B).where(B.c.id == bid, B.c.status == "booked").values(status="no_show"))
        if res.rowcount == 1:
            marked += 1
            marked_people.add((person_id, visit_date.year))
    bans = 0
    for person_id, year in sorted(marked_people):
        bans += grant_bans(s, now, person_id, year)
    return marked, bans


def grant_bans(s: Session, now: datetime, person_id: int, year: int,
               policy: rules.NoShowPolicy = rules.NoShowPolicy()) -> int:
    lock_person(s, person_id)
    days = list(s.scalars(select(Booking.visit_date).where(
        Booking.person_id == person_id, Booking.status == "no_show",
        extract("year", Booking.visit_date) == year)))
    granted = set(s.scalars(select(BanGrant.strikes).where(BanGrant.person_id == person_id, BanGrant.year == year)))
    n = 0
    for d in rules.bans_due(days, year, granted, policy):
        ban = Ban(person_id=person_id, starts_on=d.starts_on, ends_on=d.ends_on, created_at=now,
                  reason=f"{d.year}年第{d.strikes}次爽约，暂停预约{d.months}个月")
        s.add(ban)
        s.flush()
        # Under the person lock no other worker is here; the unique grant is the last line of defence.
        s.add(BanGrant(person_id=person_id, year=year, strikes=d.strikes, ban_id=ban.id, created_at=now))
        s.flush()
        n += 1
        _tell_banned(s, now, person_id, d, ban.id)
    return n


def _tell_banned(s: Session, now: datetime, person_id: int, d: rules.BanDecision, ban_id: int) -> None:
    for p in s.scalars(select(Patient).where(Patient.person_id == person_id, Patient.removed_at.is_(None))):
        enqueue(s, now, f"banned:{ban_id}:{p.id}", "banned", p.phone,
                texts.banned(p.name, d.strikes, d.year, d.ends_on), account_id=p.account_id)


def active_bans(s: Session, today: date, limit: int = 200):
    return s.execute(select(Ban, Person.id_masked).join(Person, Person.id == Ban.person_id).where(
        Ban.lifted_at.is_(None), Ban.ends_on > today).order_by(Ban.id.desc()).limit(limit)).all()


def lift_ban(s: Session, now: datetime, ban_id: int, actor: str, reason: str, ip: str | None = None) -> Ban:
    ban = s.get(Ban, ban_id, with_for_update=True)
    if ban is None:
        raise DomainError("NOT_FOUND", "未找到该禁约记录")
    if ban.lifted_at is not None:
        raise DomainError("VALIDATION_ERROR", "该禁约已解除")
    reason = (reason or "").strip()
    if not 2 <= len(reason) <= 200:
        raise DomainError("VALIDATION_ERROR", "请填写解除原因（2–200字）")
    ban.lifted_at, ban.lifted_by = now, actor
    s.flush()
    masked = s.scalar(select(Person.id_masked).where(Person.id == ban.person_id))
    audit.record(s, now, "staff", actor, "ban.lift", "ban", ban.id,
                 {"person": masked, "ends_on": ban.ends_on.isoformat(), "reason": reason}, ip=ip)
    return ban
