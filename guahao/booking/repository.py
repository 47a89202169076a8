"""Booking queries in SQLAlchemy Core: the hot path pays for no ORM unit of work.

The booking transaction's statements run on the session's Connection, not through Session.execute: the
ORM's per-statement machinery (execution events, compile state) cost about a fifth of each statement's
CPU here and does nothing for Core statements. Writes through here do not count as ORM writes for the
availability cache's clear-all; a booking invalidates its own session's pages through the release gate.
"""

from collections.abc import Callable
from datetime import date, timedelta

from sqlalchemy import Date, and_, bindparam, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from guahao.accounts.models import Ban, Patient, Person, VisitCard
from guahao.booking.models import ACTIVE_STATUSES, Booking
from guahao.catalog.models import Department, Doctor, Hospital
from guahao.errors import DomainError
from guahao.release import gate as release_gate
from guahao.schedule.models import ClinicSession, Slot

B = Booking.__table__
CS = ClinicSession.__table__
SL = Slot.__table__


def _slot_for_booking_query():
    held = (
        select(B.c.id).where(B.c.slot_id == SL.c.id, B.c.status.in_(ACTIVE_STATUSES))
        .correlate(SL).exists()
    )
    P = Patient.__table__
    return (
        select(
            SL.c.id.label("slot_id"), SL.c.seq, SL.c.starts_at.label("slot_start"),
            SL.c.ends_at.label("slot_end"), CS.c.id.label("session_id"), CS.c.hospital_id,
            CS.c.department_id, CS.c.doctor_id, CS.c.visit_date, CS.c.period, CS.c.starts_at,
            CS.c.number_type, CS.c.fee, CS.c.status, CS.c.online_bookable, CS.c.release_at,
            CS.c.capacity, CS.c.booked,
            Hospital.same_day_booking, Hospital.requires_visit_card, Hospital.requires_prepayment,
            held.label("held"), P.c.id.label("patient_pk"), P.c.person_id,
            # The slip's names, so the new booking's answer needs no second query.
            Hospital.name.label("hospital_name"), Hospital.cancel_deadline_time, Hospital.cancel_minutes_before,
            Department.name.label("department_name"), Department.location, Doctor.name.label("doctor_name"),
            Doctor.title.label("doctor_title"), P.c.name.label("patient_name"),
        )
        .join(CS, CS.c.id == SL.c.session_id)
        .join(Hospital, Hospital.id == CS.c.hospital_id)
        .join(Department, Department.id == CS.c.department_id)
        .outerjoin(Doctor, Doctor.id == CS.c.doctor_id)
        .outerjoin(P, and_(P.c.id == bindparam("patient_id"), P.c.account_id == bindparam("account_id"),
                           P.c.removed_at.is_(None)))
        .where(SL.c.id == bindparam("slot_id"))
    )


# The hot path's statements are built once: constructing a SQLAlchemy statement per request costs more
# CPU than the database spends executing it.
_SLOT_FOR_BOOKING = _slot_for_booking_query()


def slot_for_booking(s: Session, slot_id: int, account_id: int | None = None, patient_id: int | None = None):
    """The slot with its session and hospital settings, whether an active booking holds it, and (when
    asked) the account's patient in the same round trip: `patient_pk` is None when it is not theirs."""
    return s.connection().execute(_SLOT_FOR_BOOKING, dict(slot_id=slot_id, account_id=account_id,
                                                          patient_id=patient_id)).one_or_none()


def patient_for_booking(s: Session, account_id: int, patient_id: int):
    return s.execute(
        select(Patient.id, Patient.person_id, Patient.name).where(
            Patient.id == patient_id, Patient.account_id == account_id, Patient.removed_at.is_(None))
    ).one_or_none()


PE = Person.__table__
# Core, not ORM: an ORM-enabled UPDATE would also synchronise the session's identity map.
_LOCK_PERSON = update(PE).where(PE.c.id == bindparam("pid")).values(booking_version=PE.c.booking_version + 1)
_LOCK_PERSON_BAN = _LOCK_PERSON.returning(select(func.max(Ban.ends_on)).where(
    Ban.person_id == bindparam("pid"), Ban.lifted_at.is_(None), Ban.ends_on > bindparam("today"))
    .scalar_subquery())


def lock_person(s: Session, person_id: int, today: date | None = None) -> date | None:
    """Serialise one person's bookings: limit checks (L2–L4) read, then write, under this row lock.

    Returns, in the same statement, the end of the person's current ban (when `today` is given)."""
    if today is None:
        s.connection().execute(_LOCK_PERSON, dict(pid=person_id))
        return None
    return s.connection().execute(_LOCK_PERSON_BAN, dict(pid=person_id, today=today)).scalar()


def ban_end(s: Session, person_id: int, today: date) -> date | None:
    return s.scalar(select(func.max(Ban.ends_on)).where(
        Ban.person_id == person_id, Ban.lifted_at.is_(None), Ban.ends_on > today))


_VISITS_NEAR = select(B.c.hospital_id, B.c.department_id, B.c.visit_date).where(
    B.c.person_id == bindparam("pid"), B.c.status.in_(ACTIVE_STATUSES),
    B.c.visit_date.between(bindparam("lo", type_=Date), bindparam("hi", type_=Date)))


def person_visits_near(s: Session, person_id: int, around: date, span: int):
    return s.connection().execute(_VISITS_NEAR, dict(pid=person_id, lo=around - timedelta(days=span),
                                                     hi=around + timedelta(days=span))).all()


def has_visit_card(s: Session, patient_id: int, hospital_id: int) -> bool:
    return s.scalar(select(VisitCard.id).where(
        VisitCard.patient_id == patient_id, VisitCard.hospital_id == hospital_id)) is not None


_TAKE_PLACE = update(CS).where(
    CS.c.id == bindparam("sid"), CS.c.booked < CS.c.capacity, CS.c.status == "open"
).values(booked=CS.c.booked + 1).returning(CS.c.capacity - CS.c.booked)


def take_place(s: Session, session_id: int) -> int | None:
    """The capacity guard (R3): one conditional statement, no read-then-write race. Returns the places
    left after it (the release gate learns from the booking that fills a session that the session is
    full, without another query), or None when there was none to take."""
    return s.connection().execute(_TAKE_PLACE, dict(sid=session_id)).scalar()


def session_open(s: Session, session_id: int) -> bool:
    """Asked only when the conditional update took no place: full, or stopped since the slot was read
    (staff stopping a session as it is booked)? A fresh read, after the update's wait for the row."""
    return s.scalar(select(CS.c.status).where(CS.c.id == session_id)) == "open"


def free_place(s: Session, session_id: int) -> None:
    """Every path that frees a place (cancel, expiry, window cancel) comes here, so the release gate's
    sold-out answers are withdrawn in every process once the transaction commits."""
    s.execute(update(CS).where(CS.c.id == session_id, CS.c.booked > 0).values(booked=CS.c.booked - 1))
    release_gate.freed_after_commit(s, session_id)


_INSERT_BOOKING = insert(B).returning(B.c.id)


def insert_booking(s: Session, values: dict) -> int:
    """The new booking's id; a unique index's refusal is answered as the DomainError it means."""
    try:
        return s.connection().execute(_INSERT_BOOKING, values).scalar_one()
    except IntegrityError as e:
        raise DomainError(integrity_code(e.orig)) from None


def integrity_code(error: Exception) -> str:
    """The refusal a unique index's violation (a DBAPI error) stands for; anything else is re-raised."""
    text = str(error)
    name = getattr(getattr(error, "diag", None), "constraint_name", None) or ""
    if "uq_bookings_active_slot" in name or "bookings.slot_id" in text:
        return "SLOT_TAKEN"
    if "uq_bookings_active_person_dept_day" in name or "bookings.person_id" in text:
        return "DUPLICATE_DEPARTMENT_DAY"
    raise error


class BookingStore:
    """Carries out `service.booking_steps` in a SQLAlchemy session (any database, blocking)."""

    def __init__(self, s: Session, on_person: Callable[[int], None] | None = None):
        self.s = s
        self.on_person = on_person

    def slot_for_booking(self, slot_id: int, account_id: int, patient_id: int):
        return slot_for_booking(self.s, slot_id, account_id, patient_id)

    def person_known(self, person_id: int) -> None:
        if self.on_person is not None:
            self.on_person(person_id)

    def has_visit_card(self, patient_id: int, hospital_id: int) -> bool:
        return has_visit_card(self.s, patient_id, hospital_id)

    def lock_person(self, person_id: int, today: date, around: date, span: int):
        """(end of the person's ban or None, their active visits within `span` days of `around`)."""
        banned_until = lock_person(self.s, person_id, today)
        return banned_until, person_visits_near(self.s, person_id, around, span)

    def book_place(self, values: dict) -> tuple[int, int | None]:
        """Insert the booking, then take its session's place (None: there was none; the caller's
        refusal rolls the insert back). A session stopped since it was read is said to be stopped."""
        booking_id = insert_booking(self.s, values)
        left = take_place(self.s, values["session_id"])
        if left is None and not session_open(self.s, values["session_id"]):
            raise DomainError("SESSION_STOPPED")
        return booking_id, left


def set_status_if(s: Session, booking_id: int, from_statuses: tuple, values: dict) -> bool:
    res = s.execute(update(B).where(B.c.id == booking_id, B.c.status.in_(from_statuses)).values(**values))
    return res.rowcount == 1


def booking_view_query():
    """A booking with the names a patient needs on the slip."""
    return (
        select(Booking, Hospital.name.label("hospital_name"), Department.name.label("department_name"),
               Department.location.label("location"), Doctor.name.label("doctor_name"),
               Doctor.title.label("doctor_title"), Patient.name.label("patient_name"),
               Hospital.cancel_deadline_time, Hospital.cancel_minutes_before)
        .join(Hospital, Hospital.id == Booking.hospital_id)
        .join(Department, Department.id == Booking.department_id)
        .outerjoin(Doctor, Doctor.id == Booking.doctor_id)
        .join(Patient, Patient.id == Booking.patient_id)
    )


def account_bookings(s: Session, account_id: int):
    return s.execute(booking_view_query().where(Booking.account_id == account_id)
                     .order_by(Booking.visit_date.desc(), Booking.period_start.desc(), Booking.id.desc())).all()


_ACCOUNT_BOOKING = booking_view_query().where(
    and_(Booking.account_id == bindparam("aid"), Booking.id == bindparam("bid")))


def account_booking(s: Session, account_id: int, booking_id: int):
    return s.execute(_ACCOUNT_BOOKING, dict(aid=account_id, bid=booking_id)).one_or_none()
