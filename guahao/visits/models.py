from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from guahao.db import Base, UTCDateTime


class QueueEntry(Base):
    """A checked-in booking's place in its session's queue (V2); one row per booking.

    `sort_key` starts at seq × KEY_STEP so check-in order never matters, only the sequence number;
    a pass (过号) moves the key between the 3rd and 4th waiting patients behind it.
    """

    __tablename__ = "queue_entries"
    __table_args__ = (
        Index("ix_queue_entries_session_state", "session_id", "state", "sort_key"),
        Index("ix_queue_entries_doctor_done", "doctor_id", "completed_at"),
    )
    booking_id: Mapped[int] = mapped_column(ForeignKey("bookings.id"), primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("clinic_sessions.id"))
    doctor_id: Mapped[int | None] = mapped_column(ForeignKey("doctors.id"), nullable=True)
    seq: Mapped[int] = mapped_column(Integer)
    sort_key: Mapped[int] = mapped_column(BigInteger)
    state: Mapped[str] = mapped_column(String(10), default="waiting")  # waiting | calling | done
    channel: Mapped[str] = mapped_column(String(10))  # online | window
    checked_in_at: Mapped[datetime] = mapped_column(UTCDateTime)
    called_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    pass_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    call_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
