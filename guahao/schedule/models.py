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


class ScheduleTemplate(Base):
    """One cell of a doctor's weekly pattern: weekday × half-day × number type, with capacity and fee (C2)."""

    __tablename__ = "schedule_templates"
    __table_args__ = (
        UniqueConstraint("doctor_id", "weekday", "period", "number_type"),
        CheckConstraint("weekday >= 0 AND weekday <= 6", name="weekday_range"),
        CheckConstraint("capacity >= 1 AND capacity <= 500", name="capacity_range"),
        CheckConstraint("fee >= 0", name="fee_positive"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    hospital_id: Mapped[int] = mapped_column(ForeignKey("hospitals.id"), index=True)
    department_id: Mapped[int] = mapped_column(ForeignKey("departments.id"))
    doctor_id: Mapped[int] = mapped_column(ForeignKey("doctors.id"), index=True)
    weekday: Mapped[int] = mapped_column(Integer)  # 0 = Monday
    period: Mapped[str] = mapped_column(String(2))  # AM | PM
    number_type: Mapped[str] = mapped_column(String(10))
    capacity: Mapped[int] = mapped_column(Integer)
    fee: Mapped[int] = mapped_column(Integer)  # fen
    online_bookable: Mapped[bool] = mapped_column(Boolean, default=True, server_default=text("true"))
    active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=text("true"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class CalendarOverride(Base):
    """A date declared a holiday or a workday: platform-wide (hospital_id NULL) or one hospital's closure.

    Overrides beat every calendar package (C3); a make-up workday may name the weekday whose pattern it runs.
    """

    __tablename__ = "calendar_overrides"
    __table_args__ = (UniqueConstraint("day", "hospital_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    day: Mapped[date] = mapped_column(Date, index=True)
    hospital_id: Mapped[int | None] = mapped_column(ForeignKey("hospitals.id"), nullable=True)
    is_workday: Mapped[bool] = mapped_column(Boolean)
    as_weekday: Mapped[int | None] = mapped_column(Integer, nullable=True)
    note: Mapped[str] = mapped_column(String(100), default="")
    created_by: Mapped[str] = mapped_column(String(50))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
