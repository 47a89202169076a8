from datetime import time

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String, Text, Time, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from guahao.db import Base


class Hospital(Base):
    __tablename__ = "hospitals"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    grade: Mapped[str] = mapped_column(String(20), default="三级甲等")
    district: Mapped[str] = mapped_column(String(20), default="")
    address: Mapped[str] = mapped_column(String(200), default="")
    phone: Mapped[str] = mapped_column(String(40), default="")
    intro: Mapped[str] = mapped_column(Text, default="")
    is_demo: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    # Release and visit-day settings (R1, R2, X1, V1, S1); platform defaults.
    release_time: Mapped[time] = mapped_column(Time, default=time(7, 0))
    window_days: Mapped[int] = mapped_column(Integer, default=7)
    same_day_booking: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    cancel_deadline_time: Mapped[time] = mapped_column(Time, default=time(15, 0))
    # When set, the deadline is this many minutes before the booked period starts instead.
    cancel_minutes_before: Mapped[int | None] = mapped_column(Integer, nullable=True)
    checkin_lead_minutes: Mapped[int] = mapped_column(Integer, default=60)
    reminder_time: Mapped[time] = mapped_column(Time, default=time(18, 0))
    requires_visit_card: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    # M1/X2 (money branch): online prepayment, and refund tiers (NULL = platform defaults, billing.rules).
    requires_prepayment: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    refund_policy: Mapped[dict | None] = mapped_column(JSON, nullable=True)


class Department(Base):
    """Two levels: a category (大类, parent_id NULL) and its clinics (科室)."""

    __tablename__ = "departments"
    __table_args__ = (UniqueConstraint("hospital_id", "parent_id", "name"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    hospital_id: Mapped[int] = mapped_column(ForeignKey("hospitals.id"), index=True)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("departments.id"), nullable=True)
    name: Mapped[str] = mapped_column(String(50), index=True)
    is_flagship: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    intro: Mapped[str] = mapped_column(Text, default="")
    location: Mapped[str] = mapped_column(String(100), default="")  # check-in place
    sort_order: Mapped[int] = mapped_column(Integer, default=0)
    is_demo: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))


class Doctor(Base):
    __tablename__ = "doctors"
    __table_args__ = (UniqueConstraint("department_id", "name"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    hospital_id: Mapped[int] = mapped_column(ForeignKey("hospitals.id"), index=True)
    department_id: Mapped[int] = mapped_column(ForeignKey("departments.id"), index=True)
    name: Mapped[str] = mapped_column(String(30))
    title: Mapped[str] = mapped_column(String(10))  # 主任医师/副主任医师/主治医师/医师
    specialties: Mapped[str] = mapped_column(Text, default="")
    years_in_practice: Mapped[int] = mapped_column(Integer, default=0)
    intro: Mapped[str] = mapped_column(Text, default="")
    is_demo: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
