"""Booking queries in SQLAlchemy Core: the hot path pays for no ORM unit of work."""

from datetime import date, timedelta

from sqlalchemy import and_, func, insert, select, update
from sqlalchemy.orm import Session

from guahao.accounts.models import Ban, Patient, Person, VisitCard
from guahao.booking.models import ACTIVE_STATUSES, Booking
from guahao.catalog.models import Department, Doctor, Hospital
from guahao.schedule.models import ClinicSession, Slot

B = Booking.__table__
CS = ClinicSession.__table__
SL = Slot.__table__


def slot_for_booking(s: Session, slot_id: int):
    """The slot with its session and hospital settings, and whether an active booking holds it."""
    held = (
        select(B.c.id).where(B.c.slot_id == SL.c.id, B.c.status.in_(ACTIVE_STATUSES))
        .correlate(SL).exists()
    )
    row = s.execute(
        select(
            SL.c.id.label("slot_id"), SL.c.seq, SL.c.starts_at.label("slot_start"),
            SL.c.ends_at.label("slot_end"), CS.c.id.label("session_id"), CS.c.hospital_id,
            CS.c.department_id, CS.c.doctor_id, CS.c.visit_date, CS.c.period, CS.c.starts_at,
            CS.c.number_type, CS.c.fee, CS.c.status, CS.c.online_bookable, CS.c.release_at,
            CS.c.capacity, CS.c.booked,
            Hospital.same_day_booking, Hospital.requires_visit_card, Hospital.requires_prepayment,
            held.label("held"),
        )
        .join(CS, CS.c.id == SL.c.session_id)
        .join(Hospital, Hospital.id == CS.c.hospital_id)
        .where(SL.c.id == slot_id)
    ).one_or_none()
    return row


def patient_for_booking(s: Session, account_id: int, patient_id: int):
    return s.execute(
        select(Patient.id, Patient.person_id, Patient.name).where(
            Patient.id == patient_id, Patient.account_id == account_id, Patient.removed_at.is_(None))
    ).one_or_none()


def lock_person(s: Session, person_id: int) -> None:
    """Serialise one person's bookings: limit checks (L2–L4) read, then write, under this row lock."""
    s.execute(update(Person).where(Person.id == person_id)
              .values(booking_version=Person.booking_version + 1))


def ban_end(s: Session, person_id: int, today: date) -> date | None:
    return s.scalar(select(func.max(Ban.ends_on)).where(
        Ban.person_id == person_id, Ban.lifted_at.is_(None), Ban.ends_on > today))


def person_visits_near(s: Session, person_id: int, around: date, span: int):
    return s.execute(select(B.c.hospital_id, B.c.department_id, B.c.visit_date).where(
        B.c.person_id == person_id, B.c.status.in_(ACTIVE_STATUSES),
        B.c.visit_date.between(around - timedelta(days=span), around + timedelta(days=span)),
    )).all()


def has_visit_card(s: Session, patient_id: int, hospital_id: int) -> bool:
    return s.scalar(select(VisitCard.id).where(
        VisitCard.patient_id == patient_id, VisitCard.hospital_id == hospital_id)) is not None


def take_place(s: Session, session_id: int) -> bool:
    """The capacity guard (R3): one conditional statement, no read-then-write race."""
    res = s.execute(update(CS).where(
        CS.c.id == session_id, CS.c.booked < CS.c.capacity, CS.c.status == "open"
    ).values(booked=CS.c.booked + 1))
    return res.rowcount == 1


def free_place(s: Session, session_id: int) -> None:
    s.execute(update(CS).where(CS.c.id == session_id, CS.c.booked > 0).values(booked=CS.c.booked - 1))


def insert_booking(s: Session, values: dict) -> int:
    return s.execute(insert(B).values(**values).returning(B.c.id)).scalar_one()


def set_status_if(s: Session, booking_id: int, from_statuses: tuple, values: dict) -> bool:
    res = s.execute(update(B).where(B.c.id == booking_id, B.c.status.in_(from_statuses)).values(**values))
    return res.rowcount == 1


def booking_view_query():
    """A booking with the names a patient needs on the slip."""
    parent = Department.__table__.alias("parent")
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


def account_booking(s: Session, account_id: int, booking_id: int):
    return s.execute(booking_view_query().where(
        and_(Booking.account_id == account_id, Booking.id == booking_id))).one_or_none()
