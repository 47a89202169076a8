"""The payment provider interface (M2) and the sandbox provider.

A real adapter (WeChat Pay, Alipay) implements the same four operations against its HTTP API. The sandbox
keeps its own books in tables of ours and signs its callbacks with HMAC-SHA256 exactly as it verifies them,
so a forged or altered callback fails here as it would with a real provider.
"""

import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from guahao.billing import rules
from guahao.billing.models import SandboxRefund, SandboxTxn


class BadSignature(Exception):
    pass


class ProviderError(Exception):
    """The provider refused or could not be reached; the caller records it and retries later."""


@dataclass(frozen=True)
class Notification:
    out_trade_no: str
    txn_id: str
    amount: int
    trade_status: str  # SUCCESS | CLOSED


class PaymentProvider(Protocol):
    name: str

    def create_order(self, s: Session, now: datetime, out_trade_no: str, amount: int, subject: str,
                     return_url: str, expires_at: datetime | None = None) -> str:
        """Register the order with the provider (payable until `expires_at`); returns the payer's URL."""

    def parse_callback(self, fields: dict) -> Notification:
        """Verify the callback's signature and read it; raises BadSignature."""

    def query(self, s: Session, out_trade_no: str) -> str | None:
        """The provider's state of the order (created | paid | closed), None if it does not know it."""

    def close(self, s: Session, out_trade_no: str) -> None:
        """Stop the order from being paid (after expiry)."""

    def refund(self, s: Session, now: datetime, out_trade_no: str, out_refund_no: str, amount: int) -> None:
        """Refund `amount` fen; idempotent per out_refund_no; raises ProviderError."""


class SandboxProvider:
    name = "sandbox"

    def __init__(self, key: str, fail_refunds: int = 0):
        self.key = key
        # Fault injection for tests and demos: the next N refund calls fail like a provider outage.
        self.fail_refunds = fail_refunds

    def create_order(self, s, now, out_trade_no, amount, subject, return_url, expires_at=None):
        if s.get(SandboxTxn, out_trade_no) is None:
            s.add(SandboxTxn(out_trade_no=out_trade_no, txn_id="SBX" + secrets.token_hex(10), amount=amount,
                             subject=subject[:100], status="created", return_url=return_url[:300],
                             created_at=now, expires_at=expires_at))
            s.flush()
        return f"/sandbox/pay/{out_trade_no}"

    def pay(self, s: Session, now: datetime, out_trade_no: str) -> dict | None:
        """The payer confirms: the sandbox takes the money and returns the signed callback it sends."""
        s.execute(update(SandboxTxn).where(  # past its time_expire the order closes instead
            SandboxTxn.out_trade_no == out_trade_no, SandboxTxn.status == "created",
            SandboxTxn.expires_at.is_not(None), SandboxTxn.expires_at <= now).values(status="closed"))
        done = s.execute(update(SandboxTxn).where(
            SandboxTxn.out_trade_no == out_trade_no, SandboxTxn.status == "created"
        ).values(status="paid", paid_at=now)).rowcount
        txn = s.get(SandboxTxn, out_trade_no)
        if txn is None or (not done and txn.status != "paid"):
            return None
        return self.notification(txn.out_trade_no, txn.txn_id, txn.amount, now)

    def notification(self, out_trade_no: str, txn_id: str, amount: int, at: datetime,
                     trade_status: str = "SUCCESS") -> dict:
        fields = {"out_trade_no": out_trade_no, "transaction_id": txn_id, "total_fee": str(amount),
                  "trade_status": trade_status, "time_end": f"{at:%Y%m%d%H%M%S}",
                  "nonce_str": secrets.token_hex(8)}
        fields["sign"] = rules.sign(self.key, fields)
        return fields

    def parse_callback(self, fields):
        if not rules.verify(self.key, fields):
            raise BadSignature("signature does not match")
        try:
            return Notification(str(fields["out_trade_no"]), str(fields["transaction_id"]),
                                int(fields["total_fee"]), str(fields["trade_status"]))
        except (KeyError, ValueError):
            raise BadSignature("signed but malformed") from None

    def query(self, s, out_trade_no):
        txn = s.get(SandboxTxn, out_trade_no)
        return txn.status if txn else None

    def close(self, s, out_trade_no):
        s.execute(update(SandboxTxn).where(SandboxTxn.out_trade_no == out_trade_no,
                                           SandboxTxn.status == "created").values(status="closed"))

    def refund(self, s, now, out_trade_no, out_refund_no, amount):
        if self.fail_refunds > 0:
            self.fail_refunds -= 1
            raise ProviderError("sandbox: refund service unavailable (injected)")
        if s.get(SandboxRefund, out_refund_no) is not None:
            return  # idempotent
        txn = s.scalar(select(SandboxTxn).where(SandboxTxn.out_trade_no == out_trade_no).with_for_update())
        if txn is None or txn.status != "paid":
            raise ProviderError("sandbox: order not paid")
        if txn.refunded + amount > txn.amount:
            raise ProviderError("sandbox: refund exceeds amount paid")
        txn.refunded += amount
        s.add(SandboxRefund(out_refund_no=out_refund_no, out_trade_no=out_trade_no, amount=amount,
                            created_at=now))
        s.flush()


_default: SandboxProvider | None = None


def default_provider() -> SandboxProvider:
    """The process-wide provider for jobs and CLI (routes use app.state.payment_provider)."""
    global _default
    if _default is None:
        from guahao.config import get_settings

        _default = SandboxProvider(get_settings().payment_sandbox_key)
    return _default
