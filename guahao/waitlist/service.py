"""Join, leave and fill the waitlist of a full session (W1). Never commits.

A freed place is filled in the transaction that freed it (cancel, expiry), and again by the worker as a
safety net: the earliest waiting person who still passes the limits is booked at once and notified."""

from datetime import datetime

from sqlalchemy import and_, func, select, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from guahao.booking import repository as brepo
from guahao.booking import rules as brules
from guahao.booking import service as booking
from guahao.booking.models import ACTIVE_STATUSES, Booking
from guahao.catalog.models import Hospital
from guahao.clock import at_local, local
from guahao.errors import DomainError
from guahao.release.rules import check_bookable
from guahao.schedule.models import ClinicSession, Slot
from guahao.waitlist import rules
from guahao.waitlist.models import WaitlistEntry

W = WaitlistEntry.__table__


def _check_person_may_book(s: Session, now: datetime, person_id: int, cs: ClinicSession,
                           policy: brules.LimitPolicy) -> None:
    today = local(now).date()
    brules.check_not_banned(today, brepo.ban_end(s, person_id, today))
    existing = [brules.Visit(*r) for r in brepo.person_visits_near(s, person_id, cs.visit_date,
                                                                  brules.limit_span(policy))]
    brules.check_limits(existing, brules.Visit(cs.hospital_id, cs.department_id, cs.visit_date), policy)


def join(s: Session, now: datetime, account_id: int, session_id: int, patient_id: int, insurance_type: str,
         policy: brules.LimitPolicy = brules.LimitPolicy()) -> WaitlistEntry:
    cs = s.get(ClinicSession, session_id)
    if cs is None:
        raise DomainError("NOT_FOUND", "未找到该出诊")
    patient = brepo.patient_for_booking(s, account_id, patient_id)
    if patient is None:
        raise DomainError("NOT_FOUND", "未找到该就诊人")
    if not cs.online_bookable:
        raise DomainError("NOT_BOOKABLE_ONLINE")
    h = s.get(Hospital, cs.hospital_id)
    check_bookable(now, cs.visit_date, cs.starts_at, cs.release_at, h.same_day_booking)
    rules.check_may_join(cs.status, cs.booked, cs.capacity, now, at_local(cs.visit_date, cs.starts_at))
    brepo.lock_person(s, patient.person_id)
    if s.scalar(select(Booking.id).where(Booking.session_id == cs.id, Booking.person_id == patient.person_id,
                                         Booking.status.in_(ACTIVE_STATUSES))):
        raise DomainError("WAITLIST_ALREADY_BOOKED")
    _check_person_may_book(s, now, patient.person_id, cs, policy)
    entry = WaitlistEntry(session_id=cs.id, account_id=account_id, patient_id=patient.id,
                          person_id=patient.person_id, insurance_type=insurance_type, status="waiting",
                          created_at=now)
    try:
        with s.begin_nested():
            s.add(entry)
            s.flush()
    except IntegrityError:
        raise DomainError("WAITLIST_ALREADY_JOINED") from None
    return entry


def own_entry(s: Session, account_id: int, entry_id: int) -> WaitlistEntry:
    e = s.get(WaitlistEntry, entry_id)
    if e is None or e.account_id != account_id:
        raise DomainError("NOT_FOUND", "未找到该候补")
    return e


def leave(s: Session, now: datetime, account_id: int, entry_id: int) -> WaitlistEntry:
    e = own_entry(s, account_id, entry_id)
    if e.status != "waiting":
        raise DomainError("VALIDATION_ERROR", "该候补已结束")
    e.status, e.ended_at = "left", now
    s.flush()
    return e


def place(s: Session, entry: WaitlistEntry) -> int | None:
    if entry.status != "waiting":
        return None
    return s.scalar(select(func.count()).select_from(W).where(
        W.c.session_id == entry.session_id, W.c.status == "waiting", W.c.id <= entry.id))


def account_entries(s: Session, account_id: int) -> list[WaitlistEntry]:
    return list(s.scalars(select(WaitlistEntry).where(WaitlistEntry.account_id == account_id)
                          .order_by(WaitlistEntry.id.desc()).limit(100)))


def _free_slot(s: Session, session_id: int) -> int | None:
    held = select(Booking.slot_id).where(Booking.session_id == session_id, Booking.status.in_(ACTIVE_STATUSES))
    return s.scalar(select(Slot.id).where(Slot.session_id == session_id, Slot.id.not_in(held))
                    .order_by(Slot.seq).limit(1))


def fill_session(s: Session, now: datetime, session_id: int,
                 policy: brules.LimitPolicy = brules.LimitPolicy()) -> list[int]:
    """Give the session's free places to the earliest waiting people who still pass the limits (W1).
    Returns the new booking ids. Someone who fails the limits now keeps their place for a later fill."""
    from guahao.notifications import service as notify

    made: list[int] = []
    waiting = list(s.scalars(select(WaitlistEntry).where(
        WaitlistEntry.session_id == session_id, WaitlistEntry.status == "waiting").order_by(WaitlistEntry.id)))
    for entry in waiting:
        slot_id = _free_slot(s, session_id)
        if slot_id is None:
            break
        try:
            with s.begin_nested():
                bid = booking.book(s, now, entry.account_id, slot_id, entry.patient_id, entry.insurance_type,
                                   policy)
        except OperationalError:
            # PostgreSQL chose this statement as a deadlock victim (the waiter was booking elsewhere at that
            # instant, taking the locks in the other order). The savepoint is rolled back, the cancel
            # itself stands, and the worker's fill job serves this place moments later.
            break
        except DomainError as e:
            if e.code in ("SESSION_STOPPED", "NOT_RELEASED", "OUT_OF_WINDOW", "NOT_BOOKABLE_ONLINE"):
                break  # nobody can be booked into this session now
            if e.code in ("SESSION_FULL", "SLOT_TAKEN"):
                continue
            entry.last_skip_reason = e.code
            continue
        entry.status, entry.ended_at, entry.booking_id, entry.last_skip_reason = "filled", now, bid, None
        s.flush()
        notify.waitlist_filled(s, now, bid)
        made.append(bid)
    return made


def fill_all(s: Session, now: datetime) -> int:
    """The worker's safety net: sessions with someone waiting and a free place."""
    today = local(now).date()
    ids = list(s.scalars(select(ClinicSession.id).where(
        ClinicSession.status == "open", ClinicSession.booked < ClinicSession.capacity,
        ClinicSession.visit_date >= today,
        select(W.c.id).where(and_(W.c.session_id == ClinicSession.id, W.c.status == "waiting")).exists())))
    return sum(len(fill_session(s, now, sid)) for sid in ids)


def close_session(s: Session, now: datetime, session_id: int) -> int:
    """A stopped or finished session ends its waitlist."""
    return s.execute(update(W).where(W.c.session_id == session_id, W.c.status == "waiting")
                     .values(status="closed", ended_at=now)).rowcount


def close_past(s: Session, now: datetime) -> int:
    today = local(now).date()
    past = select(ClinicSession.id).where(ClinicSession.visit_date < today)
    return s.execute(update(W).where(W.c.status == "waiting", W.c.session_id.in_(past))
                     .values(status="closed", ended_at=now)).rowcount


def session_queue(s: Session, session_id: int):
    """A session's waitlist for staff: entries with the patient's name (masked by the caller)."""
    from guahao.accounts.models import Patient

    return s.execute(select(WaitlistEntry, Patient.name, Patient.phone_masked)
                     .join(Patient, Patient.id == WaitlistEntry.patient_id)
                     .where(WaitlistEntry.session_id == session_id).order_by(WaitlistEntry.id)).all()
