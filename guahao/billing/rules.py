"""Refund tiers (X2), insurance split (M3), payment expiry (M1) and callback signatures (M2), pure."""

import hashlib
import hmac
from dataclasses import asdict, dataclass
from datetime import date, datetime, time, timedelta

from guahao.clock import at_local, local

PAYMENT_MINUTES = 15  # M1: an unpaid prepaid booking expires after this long


@dataclass(frozen=True)
class RefundPolicy:
    """X2 defaults; a hospital may store its own values in hospitals.refund_policy (JSON)."""

    day_before_keep_pct: int = 0  # cancelled the day before the visit or earlier
    same_day_min_minutes: int = 60  # on the visit day, at least this long before the booked period…
    same_day_keep_pct: int = 10  # …the hospital keeps this percent
    late_keep_pct: int = 100  # later than that: no refund

    @classmethod
    def from_json(cls, data: dict | None) -> "RefundPolicy":
        if not data:
            return cls()
        known = {k: int(v) for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)

    def to_json(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class RefundQuote:
    paid: int
    refund: int
    kept: int
    tier: str  # full | partial | none
    label: str


def refund_quote(paid: int, now: datetime, visit_date: date, period_start: time,
                 policy: RefundPolicy = RefundPolicy()) -> RefundQuote:
    """What a cancel at `now` gives back. The kept part is rounded down: odd fen go to the patient."""
    today = local(now).date()
    cutoff = at_local(visit_date, period_start) - timedelta(minutes=policy.same_day_min_minutes)
    if today < visit_date:
        pct, label = policy.day_before_keep_pct, "就诊日前一天及更早取消"
    elif today == visit_date and now <= cutoff:
        pct, label = policy.same_day_keep_pct, f"就诊当天、就诊时段开始{policy.same_day_min_minutes}分钟前取消"
    else:
        pct, label = policy.late_keep_pct, f"就诊时段开始前不足{policy.same_day_min_minutes}分钟取消"
    kept = paid * pct // 100
    refund = paid - kept
    tier = "full" if kept == 0 else ("none" if refund == 0 else "partial")
    return RefundQuote(paid, refund, kept, tier, label)


def full_refund(paid: int, label: str = "停诊，全额退款") -> RefundQuote:
    return RefundQuote(paid, paid, 0, "full", label)


SPECIAL = "特需号"


def split(amount: int, category: str, insurance_type: str, local_pct: int, non_local_pct: int,
          number_type: str | None = None) -> tuple[int, int]:
    """(insurance part, self-pay part) of one item. C4: 特需 is never reimbursed. Insurance is rounded down."""
    if insurance_type == "self_pay" or category == "special":
        return 0, amount
    if category == "registration" and number_type == SPECIAL:
        return 0, amount
    pct = {"local": local_pct, "non_local": non_local_pct}.get(insurance_type, 0)
    pct = min(max(pct, 0), 100)
    insured = amount * pct // 100
    return insured, amount - insured


def payment_deadline(booked_at: datetime) -> datetime:
    return booked_at + timedelta(minutes=PAYMENT_MINUTES)


def canonical(fields: dict) -> str:
    """key=value pairs sorted by key, joined by &, the signature itself excluded (WeChat/Alipay style)."""
    return "&".join(f"{k}={fields[k]}" for k in sorted(fields) if k != "sign" and fields[k] not in (None, ""))


def sign(key: str, fields: dict) -> str:
    return hmac.new(key.encode(), canonical(fields).encode(), hashlib.sha256).hexdigest()


def verify(key: str, fields: dict) -> bool:
    given = fields.get("sign")
    return isinstance(given, str) and hmac.compare_digest(given, sign(key, fields))
