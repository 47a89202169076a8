"""Bills (what is owed, split insurance/self-pay), payments (money through a provider), refunds.

Ledger invariant, per bill and per payment: paid = refunded + retained (all integer fen).
"""

from datetime import datetime

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from guahao.db import Base, UTCDateTime


class PriceItem(Base):
    """A hospital's price table row (M1, M3): unit price and the share each insurance type reimburses."""

    __tablename__ = "price_items"
    __table_args__ = (UniqueConstraint("hospital_id", "code"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    hospital_id: Mapped[int] = mapped_column(ForeignKey("hospitals.id"), index=True)
    code: Mapped[str] = mapped_column(String(40))
    name: Mapped[str] = mapped_column(String(100))
    category: Mapped[str] = mapped_column(String(12))  # registration | exam | drug | special
    unit: Mapped[str] = mapped_column(String(10), default="次")
    unit_price: Mapped[int] = mapped_column(Integer)  # fen
    local_pct: Mapped[int] = mapped_column(Integer, default=0)  # 北京医保 reimburses this percent
    non_local_pct: Mapped[int] = mapped_column(Integer, default=0)  # 京外医保
    is_active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=text("true"))


class Bill(Base):
    __tablename__ = "bills"
    __table_args__ = (
        Index("ix_bills_account_status", "account_id", "status"),
        Index("ix_bills_patient_paid", "patient_id", "paid_at"),
        # A booking has at most one registration bill.
        Index("uq_bills_booking_registration", "booking_id", unique=True,
              sqlite_where=text("kind = 'registration'"), postgresql_where=text("kind = 'registration'")),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"))
    hospital_id: Mapped[int] = mapped_column(ForeignKey("hospitals.id"))
    booking_id: Mapped[int | None] = mapped_column(ForeignKey("bookings.id"), nullable=True)
    kind: Mapped[str] = mapped_column(String(12))  # registration | orders
    title: Mapped[str] = mapped_column(String(100))
    insurance_type: Mapped[str] = mapped_column(String(16))
    # unpaid | paid | void (cancelled before payment or expired)
    status: Mapped[str] = mapped_column(String(8), default="unpaid")
    total: Mapped[int] = mapped_column(Integer)
    insurance_amount: Mapped[int] = mapped_column(Integer)
    self_amount: Mapped[int] = mapped_column(Integer)
    paid_amount: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    refunded_amount: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    retained_amount: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    payment_id: Mapped[int | None] = mapped_column(ForeignKey("payments.id"), nullable=True)
    created_by: Mapped[str] = mapped_column(String(60))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class BillItem(Base):
    __tablename__ = "bill_items"
    id: Mapped[int] = mapped_column(primary_key=True)
    bill_id: Mapped[int] = mapped_column(ForeignKey("bills.id"), index=True)
    price_item_id: Mapped[int | None] = mapped_column(ForeignKey("price_items.id"), nullable=True)
    name: Mapped[str] = mapped_column(String(100))
    category: Mapped[str] = mapped_column(String(12))
    quantity: Mapped[int] = mapped_column(Integer)
    unit_price: Mapped[int] = mapped_column(Integer)
    amount: Mapped[int] = mapped_column(Integer)
    insurance_amount: Mapped[int] = mapped_column(Integer)
    self_amount: Mapped[int] = mapped_column(Integer)


class Payment(Base):
    """One order with the payment provider, covering one or more bills' self-pay parts."""

    __tablename__ = "payments"
    __table_args__ = (Index("ix_payments_status_expires", "status", "expires_at"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    out_trade_no: Mapped[str] = mapped_column(String(32), unique=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    provider: Mapped[str] = mapped_column(String(20))
    amount: Mapped[int] = mapped_column(Integer)
    bill_ids: Mapped[list] = mapped_column(JSON)
    # created | paid | closed (expired or superseded before money arrived)
    status: Mapped[str] = mapped_column(String(8), default="created")
    provider_txn_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # Money received but no longer owed (bill expired/paid elsewhere): refunded in full, never credited.
    unapplied: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    refunded_amount: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Refund(Base):
    """requested → succeeded | failed; a failed refund is retried (→ requested again) until it succeeds."""

    __tablename__ = "refunds"
    __table_args__ = (Index("ix_refunds_status", "status"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    out_refund_no: Mapped[str] = mapped_column(String(32), unique=True)
    payment_id: Mapped[int] = mapped_column(ForeignKey("payments.id"), index=True)
    bill_id: Mapped[int | None] = mapped_column(ForeignKey("bills.id"), nullable=True, index=True)
    booking_id: Mapped[int | None] = mapped_column(ForeignKey("bookings.id"), nullable=True)
    amount: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(10), default="requested")
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    last_error: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    succeeded_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class PaymentEvent(Base):
    """Every provider callback, including refused ones (bad signature, unknown order): the log of record."""

    __tablename__ = "payment_events"
    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    provider: Mapped[str] = mapped_column(String(20))
    out_trade_no: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    outcome: Mapped[str] = mapped_column(String(30))  # credited | duplicate | bad_signature | unknown_order | …
    detail: Mapped[dict] = mapped_column(JSON, default=dict)


class SandboxTxn(Base):
    """The sandbox provider's own books (what a real provider keeps on its side)."""

    __tablename__ = "sandbox_txns"
    out_trade_no: Mapped[str] = mapped_column(String(32), primary_key=True)
    txn_id: Mapped[str] = mapped_column(String(64), unique=True)
    amount: Mapped[int] = mapped_column(Integer)
    subject: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(8), default="created")  # created | paid | closed
    refunded: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    return_url: Mapped[str] = mapped_column(String(300), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # time_expire, as real providers take it: the payer cannot pay after this.
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class SandboxRefund(Base):
    __tablename__ = "sandbox_refunds"
    out_refund_no: Mapped[str] = mapped_column(String(32), primary_key=True)
    out_trade_no: Mapped[str] = mapped_column(ForeignKey("sandbox_txns.out_trade_no"))
    amount: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
