from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column

from guahao.db import Base, UTCDateTime


class WaitlistEntry(Base):
    """A patient waiting for a place in a full session (W1); served in id order."""

    __tablename__ = "waitlist_entries"
    __table_args__ = (
        Index("uq_waitlist_waiting_person", "session_id", "person_id", unique=True,
              sqlite_where=text("status = 'waiting'"), postgresql_where=text("status = 'waiting'")),
        Index("ix_waitlist_session_status", "session_id", "status", "id"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("clinic_sessions.id"))
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"))
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id"))
    insurance_type: Mapped[str] = mapped_column(String(16))
    # waiting | filled | left | closed (session stopped or over)
    status: Mapped[str] = mapped_column(String(10), default="waiting")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    booking_id: Mapped[int | None] = mapped_column(ForeignKey("bookings.id"), nullable=True)
    last_skip_reason: Mapped[str | None] = mapped_column(String(40), nullable=True)
