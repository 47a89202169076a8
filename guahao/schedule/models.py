from datetime import date, datetime, time

from sqlalchemy import Boolean, CheckConstraint, Date, ForeignKey, Index, Integer, String, Time, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from guahao.db import Base, UTCDateTime


class ClinicSession(Base):
    """A doctor (or a department's general clinic) on a date and half-day with one number type (C2)."""

    __tablename__ = "clinic_sessions"
    __table_args__ = (
        CheckConstraint("booked >= 0 AND booked <= capacity", name="booked_within_capacity"),
        Index("ix_clinic_sessions_dept_date", "department_id", "visit_date"),
        Index("uq_clinic_sessions_doctor_day", "doctor_id", "visit_date", "period", "number_type", unique=True),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    hospital_id: Mapped[int] = mapped_column(ForeignKey("hospitals.id"), index=True)
    department_id: Mapped[int] = mapped_column(ForeignKey("departments.id"))
    doctor_id: Mapped[int | None] = mapped_column(ForeignKey("doctors.id"), nullable=True)
    visit_date: Mapped[date] = mapped_column(Date)
    period: Mapped[str] = mapped_column(String(2))  # AM | PM
    starts_at: Mapped[time] = mapped_column(Time)
    ends_at: Mapped[time] = mapped_column(Time)
    number_type: Mapped[str] = mapped_column(String(10))  # 普通号 | 专家号 | 特需号
    fee: Mapped[int] = mapped_column(Integer)  # fen
    capacity: Mapped[int] = mapped_column(Integer)
    booked: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    status: Mapped[str] = mapped_column(String(10), default="open")  # open | stopped
    online_bookable: Mapped[bool] = mapped_column(Boolean, default=True, server_default=text("true"))
    release_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Slot(Base):
    """A numbered place in a session (就诊序号) with its expected time period."""

    __tablename__ = "slots"
    __table_args__ = (UniqueConstraint("session_id", "seq"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("clinic_sessions.id"))
    seq: Mapped[int] = mapped_column(Integer)
    starts_at: Mapped[time] = mapped_column(Time)
    ends_at: Mapped[time] = mapped_column(Time)
