"""The ledger check: every fen paid equals fen refunded plus fen retained, per bill, per booking, per
payment and in total; and our books agree with the provider's (`guahao ledger check`)."""

from collections import defaultdict
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from guahao.billing.models import Bill, Payment, Refund, SandboxRefund, SandboxTxn


@dataclass
class LedgerReport:
    paid: int = 0
    refunded: int = 0
    retained: int = 0
    refunds_pending: int = 0  # requested or failed: owed to patients, counted in `refunded`
    payments: int = 0
    bookings: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and self.paid == self.refunded + self.retained


def check(s: Session) -> LedgerReport:
    rep = LedgerReport()
    refunds = s.scalars(select(Refund)).all()
    by_bill: dict[int, int] = defaultdict(int)
    by_payment: dict[int, int] = defaultdict(int)
    for r in refunds:
        if r.amount <= 0:
            rep.problems.append(f"refund {r.out_refund_no}: non-positive amount {r.amount}")
        if r.bill_id is not None:
            by_bill[r.bill_id] += r.amount
        by_payment[r.payment_id] += r.amount
        if r.status != "succeeded":
            rep.refunds_pending += r.amount

    applied: dict[int, int] = defaultdict(int)
    kept: dict[int, int] = defaultdict(int)
    per_booking: dict[int, list[int]] = defaultdict(lambda: [0, 0, 0])
    for b in s.scalars(select(Bill)).all():
        if b.paid_amount != b.refunded_amount + b.retained_amount:
            rep.problems.append(f"bill {b.id}: paid {b.paid_amount} != refunded {b.refunded_amount} + "
                                f"retained {b.retained_amount}")
        if min(b.paid_amount, b.refunded_amount, b.retained_amount) < 0:
            rep.problems.append(f"bill {b.id}: negative amount")
        if b.refunded_amount != by_bill.get(b.id, 0):
            rep.problems.append(f"bill {b.id}: refunded {b.refunded_amount} but refund records sum to "
                                f"{by_bill.get(b.id, 0)}")
        if b.status == "paid" and b.paid_amount != b.self_amount:
            rep.problems.append(f"bill {b.id}: paid {b.paid_amount} != self-pay part {b.self_amount}")
        if b.status != "paid" and b.paid_amount != 0:
            rep.problems.append(f"bill {b.id}: {b.status} but paid {b.paid_amount}")
        if b.total != b.insurance_amount + b.self_amount:
            rep.problems.append(f"bill {b.id}: total {b.total} != insurance + self-pay")
        if b.payment_id is not None:
            applied[b.payment_id] += b.paid_amount
            kept[b.payment_id] += b.retained_amount
        if b.booking_id is not None:
            t = per_booking[b.booking_id]
            t[0] += b.paid_amount
            t[1] += b.refunded_amount
            t[2] += b.retained_amount

    for booking_id, (paid, refunded, retained) in per_booking.items():
        if paid != refunded + retained:
            rep.problems.append(f"booking {booking_id}: paid {paid} != refunded {refunded} + retained {retained}")
    rep.bookings = len(per_booking)

    sandbox = {t.out_trade_no: t for t in s.scalars(select(SandboxTxn)).all()}
    sandbox_refunds: dict[str, int] = defaultdict(int)
    for sr in s.scalars(select(SandboxRefund)).all():
        sandbox_refunds[sr.out_trade_no] += sr.amount
    succeeded: dict[int, int] = defaultdict(int)
    for r in refunds:
        if r.status == "succeeded":
            succeeded[r.payment_id] += r.amount

    for p in s.scalars(select(Payment)).all():
        if p.status != "paid":
            if applied.get(p.id) or p.refunded_amount:
                rep.problems.append(f"payment {p.out_trade_no}: {p.status} but has money applied or refunded")
            if p.provider == "sandbox" and p.out_trade_no in sandbox and sandbox[p.out_trade_no].status == "paid":
                rep.problems.append(f"payment {p.out_trade_no}: provider took the money but we never credited it")
            continue
        rep.payments += 1
        if p.unapplied:
            retained = 0
            if applied.get(p.id):
                rep.problems.append(f"payment {p.out_trade_no}: unapplied but credited to bills")
            if p.refunded_amount != p.amount:
                rep.problems.append(f"payment {p.out_trade_no}: unapplied money not refunded in full")
        else:
            retained = kept.get(p.id, 0)
            if applied.get(p.id, 0) != p.amount:
                rep.problems.append(f"payment {p.out_trade_no}: amount {p.amount} but bills credited "
                                    f"{applied.get(p.id, 0)}")
        if p.amount != p.refunded_amount + retained:
            rep.problems.append(f"payment {p.out_trade_no}: paid {p.amount} != refunded {p.refunded_amount} + "
                                f"retained {retained}")
        if p.refunded_amount != by_payment.get(p.id, 0):
            rep.problems.append(f"payment {p.out_trade_no}: refunded {p.refunded_amount} but refund records "
                                f"sum to {by_payment.get(p.id, 0)}")
        rep.paid += p.amount
        rep.refunded += p.refunded_amount
        rep.retained += retained
        if p.provider == "sandbox":
            txn = sandbox.get(p.out_trade_no)
            if txn is None or txn.status != "paid" or txn.amount != p.amount:
                rep.problems.append(f"payment {p.out_trade_no}: provider does not show it paid for {p.amount}")
            elif sandbox_refunds.get(p.out_trade_no, 0) != succeeded.get(p.id, 0):
                rep.problems.append(f"payment {p.out_trade_no}: provider refunded "
                                    f"{sandbox_refunds.get(p.out_trade_no, 0)}, we recorded "
                                    f"{succeeded.get(p.id, 0)} succeeded")
    if rep.paid != rep.refunded + rep.retained:
        rep.problems.append(f"total: paid {rep.paid} != refunded {rep.refunded} + retained {rep.retained}")
    return rep
