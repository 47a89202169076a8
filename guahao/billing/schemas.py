from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field


class CancelPreviewOut(BaseModel):
    booking_id: int
    status: str
    cancellable: bool
    reason: str | None  # why not, when not cancellable
    cancel_deadline: datetime
    paid: int  # fen
    refund: int
    kept: int
    tier: str  # full | partial | none
    tier_label: str


class CancelOut(BaseModel):
    booking_id: int
    status: str
    refund: int
    kept: int
    tier: str
    refund_status: str | None


class PaymentOut(BaseModel):
    payment_id: int | None
    out_trade_no: str | None
    amount: int
    status: str  # created | paid | closed
    pay_url: str | None
    expires_at: datetime | None


class PayBillsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    bill_ids: list[Annotated[int, Field(ge=1, le=2**31 - 1)]] = Field(min_length=1, max_length=50)


class BillItemOut(BaseModel):
    name: str
    category: str
    quantity: int
    unit_price: int
    amount: int
    insurance_amount: int
    self_amount: int


class BillOut(BaseModel):
    id: int
    kind: str
    title: str
    status: str
    patient_id: int
    booking_id: int | None
    insurance_type: str
    total: int
    insurance_amount: int
    self_amount: int
    paid_amount: int
    refunded_amount: int
    created_at: datetime
    paid_at: datetime | None
    items: list[BillItemOut]


class ReceiptOut(BaseModel):
    kind: str  # payment | refund
    id: int
    number: str
    amount: int
    at: datetime
    status: str
    title: str
    html_url: str
    pdf_url: str


class MonthTotal(BaseModel):
    month: int
    total: int
    insurance_paid: int
    self_paid: int
    refunded: int


class SummaryOut(BaseModel):
    patient_id: int
    year: int
    months: list[MonthTotal]
    total: int
    insurance_paid: int
    self_paid: int
    refunded: int
    net_self_paid: int


class PriceItemIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: str = Field(min_length=1, max_length=40)
    name: str = Field(min_length=1, max_length=100)
    category: str = Field(pattern="^(registration|exam|drug|special)$")
    unit: str = Field(default="次", max_length=10)
    unit_price: int = Field(ge=0, le=10_000_000)
    local_pct: int = Field(default=0, ge=0, le=100)
    non_local_pct: int = Field(default=0, ge=0, le=100)


class PriceItemOut(PriceItemIn):
    model_config = ConfigDict(extra="ignore", from_attributes=True)
    id: int
    hospital_id: int


class OrderLineIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    price_item_id: int = Field(ge=1, le=2**31 - 1)
    quantity: int = Field(default=1, ge=1, le=100)


class OrderBillIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    booking_id: int = Field(ge=1, le=2**31 - 1)
    items: list[OrderLineIn] = Field(min_length=1, max_length=50)


class LedgerOut(BaseModel):
    ok: bool
    paid: int
    refunded: int
    retained: int
    refunds_pending: int
    payments: int
    bookings: int
    problems: list[str]


class RefundPolicyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    requires_prepayment: bool | None = None
    # X1 online cancel deadline as minutes before the booked period (null: 15:00 the day before).
    cancel_minutes_before: int | None = Field(default=None, ge=0, le=7 * 24 * 60)
    day_before_keep_pct: int = Field(default=0, ge=0, le=100)
    same_day_min_minutes: int = Field(default=60, ge=0, le=24 * 60)
    same_day_keep_pct: int = Field(default=10, ge=0, le=100)
    late_keep_pct: int = Field(default=100, ge=0, le=100)


class NotifyAnswer(BaseModel):
    """What a payment provider expects back from a callback (its own protocol, not our error shape)."""

    code: str  # SUCCESS | FAIL
    message: str
