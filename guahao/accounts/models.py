from datetime import date, datetime

from sqlalchemy import Boolean, Date, ForeignKey, Index, Integer, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from guahao.db import Base, UTCDateTime
from guahao.privacy import Encrypted


class Account(Base):
    __tablename__ = "accounts"
    id: Mapped[int] = mapped_column(primary_key=True)
    phone_hash: Mapped[str] = mapped_column(String(64), unique=True)
    phone: Mapped[str] = mapped_column(Encrypted(200))
    phone_masked: Mapped[str] = mapped_column(String(11))
    password_hash: Mapped[str] = mapped_column(String(200))
    is_active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=text("true"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Person(Base):
    """One real person, keyed by resident ID (or, for a child without one, by the birth certificate's
    number: rules.person_key): limits, no-shows and bans follow it (A3)."""

    __tablename__ = "persons"
    id: Mapped[int] = mapped_column(primary_key=True)
    id_kind: Mapped[str] = mapped_column(String(3), default="RIC", server_default="RIC")  # RIC | BC
    id_hash: Mapped[str] = mapped_column(String(64), unique=True)
    id_number: Mapped[str] = mapped_column(Encrypted(200))
    id_masked: Mapped[str] = mapped_column(String(18))
    birth_date: Mapped[date] = mapped_column(Date)
    sex: Mapped[str] = mapped_column(String(1))
    # Bumped by every booking of this person: the row lock serialises one person's bookings.
    booking_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Patient(Base):
    """A person as seen from one account (就诊人)."""

    __tablename__ = "patients"
    __table_args__ = (
        Index("uq_patients_account_person", "account_id", "person_id", unique=True,
              sqlite_where=text("removed_at IS NULL"), postgresql_where=text("removed_at IS NULL")),
        Index("uq_patients_account_self", "account_id", unique=True,
              sqlite_where=text("relation = '本人' AND removed_at IS NULL"),
              postgresql_where=text("relation = '本人' AND removed_at IS NULL")),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id"), index=True)
    name: Mapped[str] = mapped_column(String(30))
    phone: Mapped[str] = mapped_column(Encrypted(200))
    phone_masked: Mapped[str] = mapped_column(String(11))
    relation: Mapped[str] = mapped_column(String(4))
    insurance_type: Mapped[str] = mapped_column(String(16), default="self_pay")
    # A child added by birth certificate (A2): the guardian's resident ID number.
    guardian_id_number: Mapped[str | None] = mapped_column(Encrypted(200), nullable=True)
    guardian_id_masked: Mapped[str | None] = mapped_column(String(18), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class VisitCard(Base):
    """A patient's record number at one hospital (就诊卡, A5)."""

    __tablename__ = "visit_cards"
    __table_args__ = (UniqueConstraint("patient_id", "hospital_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"))
    hospital_id: Mapped[int] = mapped_column(ForeignKey("hospitals.id"))
    card_number: Mapped[str] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Ban(Base):
    """A booking ban on a person (N2); lifted early only by staff, which is logged."""

    __tablename__ = "bans"
    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id"), index=True)
    starts_on: Mapped[date] = mapped_column(Date)
    ends_on: Mapped[date] = mapped_column(Date)  # first day the person may book again
    reason: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    lifted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    lifted_by: Mapped[str | None] = mapped_column(String(100), nullable=True)
