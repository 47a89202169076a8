from datetime import date, datetime, time

from sqlalchemy import JSON, Date, ForeignKey, Index, Integer, String, Time, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from guahao.db import Base, UTCDateTime

# pending_payment (money branch, M1): a prepaid booking awaiting payment holds its slot and counts toward
# the limits like any active booking until paid (→ booked) or expired after 15 min (→ expired, slot freed).
ACTIVE_STATUSES = ("booked", "checked_in", "completed", "pending_payment")
_ACTIVE_SQL = "status IN ('booked', 'checked_in', 'completed', 'pending_payment')"


class Booking(Base):
    __tablename__ = "bookings"
    __table_args__ = (
        # R3: a slot is held by at most one active booking.
        Index("uq_bookings_active_slot", "slot_id", unique=True,
              sqlite_where=text(_ACTIVE_SQL), postgresql_where=text(_ACTIVE_SQL)),
        # L1: one active booking per person + hospital + department + visit date.
        Index("uq_bookings_active_person_dept_day", "person_id", "hospital_id", "department_id", "visit_date",
              unique=True, sqlite_where=text(_ACTIVE_SQL), postgresql_where=text(_ACTIVE_SQL)),
        Index("ix_bookings_person_date", "person_id", "visit_date"),
        Index("ix_bookings_session", "session_id"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    serial_number: Mapped[str] = mapped_column(String(20), unique=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id"))
    slot_id: Mapped[int] = mapped_column(ForeignKey("slots.id"))
    session_id: Mapped[int] = mapped_column(ForeignKey("clinic_sessions.id"))
    hospital_id: Mapped[int] = mapped_column(ForeignKey("hospitals.id"))
    department_id: Mapped[int] = mapped_column(ForeignKey("departments.id"))
    doctor_id: Mapped[int | None] = mapped_column(ForeignKey("doctors.id"), nullable=True)
    visit_date: Mapped[date] = mapped_column(Date)
    period: Mapped[str] = mapped_column(String(2))
    period_start: Mapped[time] = mapped_column(Time)
    period_end: Mapped[time] = mapped_column(Time)
    seq: Mapped[int] = mapped_column(Integer)
    number_type: Mapped[str] = mapped_column(String(10))
    fee: Mapped[int] = mapped_column(Integer)
    insurance_type: Mapped[str] = mapped_column(String(16))
    # pending_payment | booked | checked_in | completed | cancelled | rescheduled | no_show | stopped | expired
    status: Mapped[str] = mapped_column(String(16), default="booked")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    cancel_reason: Mapped[str | None] = mapped_column(String(100), nullable=True)
    rescheduled_from_id: Mapped[int | None] = mapped_column(ForeignKey("bookings.id"), nullable=True)


class IdempotencyRecord(Base):
    """The answer given to (account, Idempotency-Key): a retry gets it again instead of acting twice."""

    __tablename__ = "idempotency_records"
    __table_args__ = (UniqueConstraint("account_id", "key"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(Integer)
    key: Mapped[str] = mapped_column(String(100))
    fingerprint: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer)
    body: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
