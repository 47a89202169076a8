"""Payments, refunds and bills (M1–M3, X2). Never commits: the route, CLI command or job owns the transaction.

Ledger invariant kept by every function here, per bill and per payment: paid = refunded + retained.
Paying moves a bill's self-pay amount into `retained`; a refund moves fen from retained to refunded with a
conditional update, so no sequence of calls (or concurrent callers) can refund more than was paid.
"""

import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session

from guahao.audit.service import record
from guahao.billing import outbox, rules
from guahao.billing.models import Bill, BillItem, Payment, PaymentEvent, PriceItem, Refund
from guahao.billing.providers import BadSignature, PaymentProvider, ProviderError, default_provider
from guahao.booking import service as booking_service
from guahao.booking.models import Booking
from guahao.booking.repository import free_place, set_status_if
from guahao.catalog.models import Hospital
from guahao.errors import DomainError
from guahao.staff.rules import Role, check_hospital, check_role
from guahao.staff.service import Staff

log = logging.getLogger("guahao.billing")


def _no(prefix: str, now: datetime) -> str:
    from guahao.clock import local

    return f"{prefix}{local(now):%y%m%d%H%M}{secrets.token_hex(5)}"


# ---------------------------------------------------------------- price table

def price_table(s: Session, hospital_id: int) -> list[PriceItem]:
    return list(s.scalars(select(PriceItem).where(PriceItem.hospital_id == hospital_id)
                          .order_by(PriceItem.category, PriceItem.code)))


def add_price_item(s: Session, now: datetime, actor: str, hospital_id: int, data: dict, ip: str | None = None
                   ) -> PriceItem:
    """One row of a hospital's price table (M1, M3); `data` is a validated PriceItemIn dump. Audited."""
    if s.scalar(select(PriceItem.id).where(PriceItem.hospital_id == hospital_id, PriceItem.code == data["code"])):
        raise DomainError("VALIDATION_ERROR", "该收费编码已存在")
    item = PriceItem(hospital_id=hospital_id, **data)
    s.add(item)
    s.flush()
    record(s, now, "staff", actor, "price_item.create", "price_item", item.id, data, hospital_id, ip)
    return item


# ---------------------------------------------------------------- bills

def _price_item(s: Session, hospital_id: int, code: str) -> PriceItem | None:
    return s.scalar(select(PriceItem).where(PriceItem.hospital_id == hospital_id, PriceItem.code == code,
                                            PriceItem.is_active.is_(True)))


def registration_bill(s: Session, now: datetime, b: Booking) -> Bill:
    """The booking's registration bill (挂号费), made on first need; the fee is the session's (M1)."""
    bill = s.scalar(select(Bill).where(Bill.booking_id == b.id, Bill.kind == "registration"))
    if bill is not None:
        return bill
    item = _price_item(s, b.hospital_id, f"REG-{b.number_type}")
    insured, own = rules.split(b.fee, "registration", b.insurance_type, item.local_pct if item else 0,
                               item.non_local_pct if item else 0, b.number_type)
    bill = Bill(account_id=b.account_id, patient_id=b.patient_id, hospital_id=b.hospital_id, booking_id=b.id,
                kind="registration", title=f"{b.number_type}挂号费", insurance_type=b.insurance_type,
                status="unpaid", total=b.fee, insurance_amount=insured, self_amount=own, created_by="system",
                created_at=now)
    s.add(bill)
    s.flush()
    s.add(BillItem(bill_id=bill.id, price_item_id=item.id if item else None, name=bill.title,
                   category="registration", quantity=1, unit_price=b.fee, amount=b.fee,
                   insurance_amount=insured, self_amount=own))
    s.flush()
    return bill


def ensure_pending_bills(s: Session, now: datetime, account_id: int) -> None:
    for b in s.scalars(select(Booking).where(Booking.account_id == account_id,
                                             Booking.status == "pending_payment")):
        registration_bill(s, now, b)


@dataclass(frozen=True)
class OrderLine:
    price_item_id: int
    quantity: int = 1


def create_order_bill(s: Session, now: datetime, staff: Staff, booking_id: int, lines: list[OrderLine],
                      ip: str | None = None) -> Bill:
    """A bill from a doctor's orders (exams, drugs), split per item by insurance type (M3)."""
    check_role(staff.role, (Role.DOCTOR, Role.CLERK, Role.HOSPITAL_ADMIN))
    b = s.get(Booking, booking_id)
    if b is None:
        raise DomainError("NOT_FOUND", "未找到该预约")
    check_hospital(staff.role, staff.hospital_id, b.hospital_id)
    if staff.role == Role.DOCTOR and b.doctor_id != staff.doctor_id:
        raise DomainError("FORBIDDEN", "只能为本人接诊的患者开单")
    if b.status not in ("booked", "checked_in", "completed"):
        raise DomainError("BOOKING_NOT_ACTIVE", "该预约当前状态不能开单")
    if not lines:
        raise DomainError("VALIDATION_ERROR", "请至少选择一项")
    items = []
    for line in lines:
        pi = s.get(PriceItem, line.price_item_id)
        if pi is None or pi.hospital_id != b.hospital_id or not pi.is_active or pi.category == "registration":
            raise DomainError("NOT_FOUND", "未找到该收费项目")
        amount = pi.unit_price * line.quantity
        insured, own = rules.split(amount, pi.category, b.insurance_type, pi.local_pct, pi.non_local_pct)
        items.append(BillItem(price_item_id=pi.id, name=pi.name, category=pi.category, quantity=line.quantity,
                              unit_price=pi.unit_price, amount=amount, insurance_amount=insured,
                              self_amount=own))
    bill = Bill(account_id=b.account_id, patient_id=b.patient_id, hospital_id=b.hospital_id, booking_id=b.id,
                kind="orders", title="检查/药品费用", insurance_type=b.insurance_type, status="unpaid",
                total=sum(i.amount for i in items), insurance_amount=sum(i.insurance_amount for i in items),
                self_amount=sum(i.self_amount for i in items), created_by=f"staff:{staff.username}",
                created_at=now)
    s.add(bill)
    s.flush()
    for i in items:
        i.bill_id = bill.id
        s.add(i)
    record(s, now, "staff", staff.username, "bill.create", "bill", bill.id,
           {"booking_id": b.id, "total": bill.total, "items": len(items)}, b.hospital_id, ip)
    s.flush()
    return bill


# ---------------------------------------------------------------- payments

def _expires(s: Session, now: datetime, bills: list[Bill]) -> datetime:
    deadlines = [now + timedelta(minutes=rules.PAYMENT_MINUTES)]
    for bill in bills:
        if bill.kind == "registration":
            b = s.get(Booking, bill.booking_id)
            if b.status != "pending_payment":
                raise DomainError("PAYMENT_EXPIRED", "该预约已不在待支付状态")
            deadline = rules.payment_deadline(b.created_at)
            if now >= deadline:
                raise DomainError("PAYMENT_EXPIRED")
            deadlines.append(deadline)
    return min(deadlines)


def start_payment(s: Session, now: datetime, provider: PaymentProvider, account_id: int, bill_ids: list[int],
                  return_url: str = "/billing/bills") -> tuple[Payment | None, str | None]:
    """One provider order for the self-pay parts of `bill_ids` together; returns (payment, pay URL).

    Nothing to pay (fully insured) settles the bills at once and returns (None, None).
    """
    ids = sorted(set(bill_ids))
    if not ids:
        raise DomainError("NOTHING_TO_PAY")
    bills = list(s.scalars(select(Bill).where(Bill.id.in_(ids), Bill.account_id == account_id)))
    if len(bills) != len(ids):
        raise DomainError("NOT_FOUND", "未找到该账单")
    if any(b.status == "paid" for b in bills):
        raise DomainError("ALREADY_PAID")
    if any(b.status != "unpaid" for b in bills):
        raise DomainError("PAYMENT_EXPIRED", "账单已失效")
    expires = _expires(s, now, bills)
    amount = sum(b.self_amount for b in bills)
    if amount == 0:
        if not _apply(s, now, None, ids, account_id):
            raise DomainError("PAYMENT_EXPIRED", "账单已失效")
        return None, None
    existing = s.scalars(select(Payment).where(Payment.account_id == account_id, Payment.status == "created",
                                               Payment.expires_at > now)).all()
    for p in existing:
        if sorted(p.bill_ids) == ids:
            return p, provider.create_order(s, now, p.out_trade_no, p.amount, _subject(bills), return_url,
                                            p.expires_at)
    pay = Payment(out_trade_no=_no("P", now), account_id=account_id, provider=provider.name, amount=amount,
                  bill_ids=ids, status="created", created_at=now, expires_at=expires)
    s.add(pay)
    s.flush()
    return pay, provider.create_order(s, now, pay.out_trade_no, amount, _subject(bills), return_url, expires)


def _subject(bills: list[Bill]) -> str:
    return bills[0].title if len(bills) == 1 else f"{bills[0].title}等{len(bills)}项"


def pay_booking(s: Session, now: datetime, provider: PaymentProvider, account_id: int, booking_id: int,
                return_url: str = "/billing/bills"):
    row = booking_service.get_view(s, account_id, booking_id)
    b = row.Booking
    if b.status != "pending_payment":
        bill = s.scalar(select(Bill).where(Bill.booking_id == b.id, Bill.kind == "registration"))
        if bill is not None and bill.status == "paid":
            raise DomainError("ALREADY_PAID")
        raise DomainError("PAYMENT_EXPIRED" if b.status == "expired" else "NOTHING_TO_PAY",
                          None if b.status == "expired" else "该预约无需在线支付")
    bill = registration_bill(s, now, b)
    return start_payment(s, now, provider, account_id, [bill.id], return_url)


class _NotApplicable(Exception):
    pass


def _apply(s: Session, now: datetime, pay: Payment | None, bill_ids: list[int], account_id: int) -> bool:
    """Mark every bill paid and its booking booked, all or none (a savepoint undoes a partial apply)."""
    try:
        with s.begin_nested():
            for bill_id in bill_ids:
                done = s.execute(update(Bill).where(
                    Bill.id == bill_id, Bill.account_id == account_id, Bill.status == "unpaid"
                ).values(status="paid", paid_amount=Bill.self_amount, retained_amount=Bill.self_amount,
                         payment_id=pay.id if pay else None, paid_at=now)).rowcount
                if not done:
                    raise _NotApplicable
                bill = s.get(Bill, bill_id)
                s.refresh(bill)
                if bill.kind == "registration" and not set_status_if(
                        s, bill.booking_id, ("pending_payment",), {"status": "booked"}):
                    raise _NotApplicable
            if pay is not None:
                total = sum(s.get(Bill, i).self_amount for i in bill_ids)
                if total != pay.amount:
                    raise _NotApplicable
    except _NotApplicable:
        return False
    return True


def _event(s: Session, now: datetime, provider: str, out_trade_no, outcome: str, **detail) -> None:
    s.add(PaymentEvent(at=now, provider=provider, out_trade_no=str(out_trade_no)[:64] if out_trade_no else None,
                       outcome=outcome, detail=detail))
    s.flush()
    log.info("payment callback %s: %s %s", outcome, out_trade_no, detail)


def handle_callback(s: Session, now: datetime, provider: PaymentProvider, fields: dict) -> tuple[bool, str]:
    """A provider's payment notification (M2). Returns (acknowledge, outcome); every call is logged.

    Idempotent: a repeated notification changes nothing. Money that arrives for an order we can no longer
    honour (expired, bills paid by another order) is recorded and refunded in full, never credited twice.
    """
    raw_no = fields.get("out_trade_no") if isinstance(fields, dict) else None
    try:
        n = provider.parse_callback(fields)
    except BadSignature as e:
        _event(s, now, provider.name, raw_no, "bad_signature", reason=str(e))
        return False, "bad_signature"
    pay = s.scalar(select(Payment).where(Payment.out_trade_no == n.out_trade_no).with_for_update())
    if pay is None:
        _event(s, now, provider.name, n.out_trade_no, "unknown_order", amount=n.amount)
        return False, "unknown_order"
    if n.trade_status != "SUCCESS":
        _event(s, now, provider.name, n.out_trade_no, "ignored", trade_status=n.trade_status)
        return True, "ignored"
    if n.amount != pay.amount:
        _event(s, now, provider.name, n.out_trade_no, "amount_mismatch", amount=n.amount, expected=pay.amount)
        return False, "amount_mismatch"
    outcome = _credit(s, now, provider, pay, n.txn_id)
    _event(s, now, provider.name, n.out_trade_no, outcome, amount=n.amount,
           refunded=pay.refunded_amount, unapplied=pay.unapplied)
    return True, outcome


def _credit(s: Session, now: datetime, provider: PaymentProvider, pay: Payment, txn_id: str | None) -> str:
    """Money for `pay` has arrived: credit its bills once, or refund it in full if they are no longer payable."""
    was = pay.status
    if was == "paid" or not s.execute(update(Payment).where(Payment.id == pay.id, Payment.status == was).values(
            status="paid", paid_at=now, provider_txn_id=txn_id)).rowcount:
        return "duplicate"
    s.refresh(pay)
    if was == "created" and _apply(s, now, pay, list(pay.bill_ids), pay.account_id):
        return "credited"
    pay.unapplied = True
    s.flush()
    request_refund(s, now, provider, pay, None, pay.amount, "order_no_longer_payable")
    return "refunded_unapplied"


def reconcile(s: Session, now: datetime, provider: PaymentProvider | None = None) -> int:
    """Ask the provider about orders we still think unpaid (a lost callback): credit what it says is paid."""
    provider = provider or default_provider()
    n = 0
    for pay in s.scalars(select(Payment).where(Payment.status.in_(("created", "closed")),
                                               Payment.provider == provider.name)).all():
        if provider.query(s, pay.out_trade_no) == "paid":
            outcome = _credit(s, now, provider, pay, None)
            _event(s, now, provider.name, pay.out_trade_no, f"reconciled_{outcome}", amount=pay.amount)
            n += 1
    return n


def _close_payments_for(s: Session, provider: PaymentProvider, bill: Bill) -> None:
    bill_id = bill.id
    for p in s.scalars(select(Payment).where(Payment.status == "created",
                                             Payment.account_id == bill.account_id)).all():
        if bill_id in p.bill_ids:
            if s.execute(update(Payment).where(Payment.id == p.id, Payment.status == "created")
                         .values(status="closed")).rowcount:
                provider.close(s, p.out_trade_no)


def _void_unpaid_registration(s: Session, provider: PaymentProvider, booking_id: int) -> None:
    bill = s.scalar(select(Bill).where(Bill.booking_id == booking_id, Bill.kind == "registration"))
    if bill is not None and s.execute(update(Bill).where(Bill.id == bill.id, Bill.status == "unpaid")
                                      .values(status="void")).rowcount:
        _close_payments_for(s, provider, bill)


def expire_unpaid(s: Session, now: datetime, provider: PaymentProvider | None = None) -> int:
    """M1: prepaid bookings unpaid 15 min after booking expire and free their place; stale orders close.

    Safe to run at any time and concurrently: each step is a conditional update.
    """
    from guahao.waitlist.service import fill_session

    provider = provider or default_provider()
    cutoff = now - timedelta(minutes=rules.PAYMENT_MINUTES)
    n = 0
    for b in s.execute(select(Booking.id, Booking.session_id).where(
            Booking.status == "pending_payment", Booking.created_at <= cutoff)).all():
        if set_status_if(s, b.id, ("pending_payment",),
                         dict(status="expired", cancelled_at=now, cancel_reason="payment_timeout")):
            free_place(s, b.session_id)
            _void_unpaid_registration(s, provider, b.id)
            fill_session(s, now, b.session_id)  # W1: a freed place goes to the first eligible waiting person
            n += 1
    for p in s.scalars(select(Payment).where(Payment.status == "created", Payment.expires_at <= now)).all():
        if s.execute(update(Payment).where(Payment.id == p.id, Payment.status == "created")
                     .values(status="closed")).rowcount:
            provider.close(s, p.out_trade_no)
    return n


# ---------------------------------------------------------------- refunds

def request_refund(s: Session, now: datetime, provider: PaymentProvider, pay: Payment, bill: Bill | None,
                   amount: int, reason: str, booking_id: int | None = None,
                   actor: tuple[str, object] = ("system", "billing")) -> Refund | None:
    """Take `amount` from what is retained and record it to send back: `requested`, sent to the provider
    once the caller's transaction commits (billing/outbox.py), then succeeded | failed."""
    if amount <= 0:
        return None
    if bill is not None and not s.execute(update(Bill).where(
            Bill.id == bill.id, Bill.retained_amount >= amount
    ).values(refunded_amount=Bill.refunded_amount + amount,
             retained_amount=Bill.retained_amount - amount)).rowcount:
        raise DomainError("REFUND_EXCEEDS_PAID")
    if not s.execute(update(Payment).where(
            Payment.id == pay.id, Payment.status == "paid", Payment.refunded_amount + amount <= Payment.amount
    ).values(refunded_amount=Payment.refunded_amount + amount)).rowcount:
        raise DomainError("REFUND_EXCEEDS_PAID")
    r = Refund(out_refund_no=_no("R", now), payment_id=pay.id, bill_id=bill.id if bill else None,
               booking_id=booking_id or (bill.booking_id if bill else None), amount=amount, reason=reason,
               status="requested", attempts=0, created_at=now, updated_at=now)
    s.add(r)
    s.flush()
    hospital_id = bill.hospital_id if bill else None
    record(s, now, actor[0], actor[1], "refund.request", "refund", r.id,
           {"amount": amount, "reason": reason, "payment": pay.out_trade_no, "booking_id": r.booking_id},
           hospital_id)
    outbox.send_after_commit(s, r.id, provider, now)
    if bill is not None:
        s.refresh(bill)
    return r


def send_refund(s: Session, now: datetime, provider: PaymentProvider, refund_id: int) -> None:
    """Send a recorded refund to the provider, in the caller's unit of work (after the one that recorded
    it committed); a refund already settled, or rolled back with its transaction, is left alone."""
    r = s.get(Refund, refund_id)
    if r is None or r.status != "requested":
        return
    _attempt(s, now, provider, r, s.get(Payment, r.payment_id).out_trade_no)


def _attempt(s: Session, now: datetime, provider: PaymentProvider, r: Refund, out_trade_no: str) -> None:
    r.attempts += 1
    r.updated_at = now
    try:
        with s.begin_nested():
            provider.refund(s, now, out_trade_no, r.out_refund_no, r.amount)
    except ProviderError as e:
        r.status, r.last_error = "failed", str(e)[:200]
        log.warning("refund %s failed (attempt %s): %s", r.out_refund_no, r.attempts, e)
    else:
        r.status, r.succeeded_at, r.last_error = "succeeded", now, None
    s.flush()


# A refund still `requested` this long after it was recorded was never sent: the process stopped between
# its transaction's commit and the provider call (billing/outbox.py).
UNSENT_AFTER = timedelta(minutes=10)


def retry_refunds(s: Session, now: datetime, provider: PaymentProvider | None = None,
                  hospital_id: int | None = None) -> tuple[int, int]:
    """failed, or requested and never sent (UNSENT_AFTER) → requested (retried) → succeeded | failed.
    Returns (succeeded, still failed).

    A retry calls the provider inside this transaction: the refund's number is committed already, so a
    rollback here loses at most the outcome, and the next retry sends the same number (paid once).
    `hospital_id`: only that hospital's refunds (a hospital admin's retry); None: all (platform, worker).
    """
    provider = provider or default_provider()
    ok = bad = 0
    due = or_(Refund.status == "failed",
              and_(Refund.status == "requested", Refund.updated_at < now - UNSENT_AFTER))
    q = select(Refund).where(due)
    if hospital_id is not None:
        q = (q.outerjoin(Bill, Bill.id == Refund.bill_id).outerjoin(Booking, Booking.id == Refund.booking_id)
             .where(func.coalesce(Bill.hospital_id, Booking.hospital_id) == hospital_id))
    for r in s.scalars(q.order_by(Refund.id)).all():
        if not s.execute(update(Refund).where(Refund.id == r.id, due)
                         .values(status="requested", updated_at=now)).rowcount:
            continue
        s.refresh(r)
        record(s, now, "system", "billing", "refund.retry", "refund", r.id, {"attempt": r.attempts + 1})
        send_refund(s, now, provider, r.id)
        ok, bad = (ok + 1, bad) if r.status == "succeeded" else (ok, bad + 1)
    return ok, bad


def _paid_registration(s: Session, booking_id: int) -> Bill | None:
    return s.scalar(select(Bill).where(Bill.booking_id == booking_id, Bill.kind == "registration",
                                       Bill.status == "paid"))


def quote_cancel(s: Session, now: datetime, b: Booking) -> rules.RefundQuote:
    bill = _paid_registration(s, b.id)
    if bill is None:
        return rules.RefundQuote(0, 0, 0, "full", "未支付，无需退款")
    h = s.get(Hospital, b.hospital_id)
    q = rules.refund_quote(bill.paid_amount, now, b.visit_date, b.period_start,
                           rules.RefundPolicy.from_json(h.refund_policy))
    refund = min(q.refund, bill.retained_amount)
    return rules.RefundQuote(q.paid, refund, q.paid - refund, q.tier, q.label)


def cancel_preview(s: Session, now: datetime, account_id: int, booking_id: int):
    """What a cancel now would give back, and whether it is allowed (X1 deadline, status)."""
    row = booking_service.get_view(s, account_id, booking_id)
    b = row.Booking
    problem = None
    if b.status not in ("booked", "pending_payment"):
        problem = DomainError("NOT_CANCELLABLE")
    else:
        try:
            booking_service.rules.check_cancellable(now, booking_service.deadline_of(row))
        except DomainError as e:
            problem = e
    return b, quote_cancel(s, now, b), booking_service.deadline_of(row), problem


def cancel_booking(s: Session, now: datetime, account_id: int, booking_id: int,
                   provider: PaymentProvider | None = None, reason: str = "patient",
                   actor: tuple[str, object] | None = None, at_window: bool = False) -> rules.RefundQuote:
    """Cancel (X1) and refund by the hospital's tiers (X2) in one unit of work.

    `at_window`: staff cancel at the hospital, where the online deadline (X1) does not apply; the refund
    tiers still do, so a visit-day cancel keeps what the tier says.
    """
    provider = provider or default_provider()
    b = s.get(Booking, booking_id)
    quote = quote_cancel(s, now, b) if b is not None and b.account_id == account_id else None
    if at_window and b is not None:
        if not set_status_if(s, b.id, ("booked", "pending_payment"),
                             dict(status="cancelled", cancelled_at=now, cancel_reason=reason)):
            raise DomainError("NOT_CANCELLABLE", "该预约当前状态不能取消")
        free_place(s, b.session_id)
    else:
        booking_service.cancel(s, now, account_id, booking_id, reason)
    bill = _paid_registration(s, booking_id)
    if bill is not None:
        request_refund(s, now, provider, s.get(Payment, bill.payment_id), bill, quote.refund, f"cancel:{quote.tier}",
                       booking_id, actor or ("account", account_id))
    else:
        _void_unpaid_registration(s, provider, booking_id)
    return quote


def cancel_on_behalf(s: Session, now: datetime, staff: Staff, booking_id: int,
                     provider: PaymentProvider | None = None, ip: str | None = None) -> rules.RefundQuote:
    check_role(staff.role, (Role.CLERK, Role.HOSPITAL_ADMIN))
    b = s.get(Booking, booking_id)
    if b is None:
        raise DomainError("NOT_FOUND", "未找到该预约")
    check_hospital(staff.role, staff.hospital_id, b.hospital_id)
    quote = cancel_booking(s, now, b.account_id, booking_id, provider, "staff", ("staff", staff.username), at_window=True)
    record(s, now, "staff", staff.username, "booking.cancel_on_behalf", "booking", b.id,
           {"serial": b.serial_number, "refund": quote.refund, "kept": quote.kept}, b.hospital_id, ip)
    return quote


def refund_stopped_booking(s: Session, now: datetime, booking_id: int,
                           provider: PaymentProvider | None = None) -> int:
    """C3/X2: a stopped session's booking gets everything back. For the stop-session flow; returns fen."""
    provider = provider or default_provider()
    b = s.get(Booking, booking_id)
    # Call it after (or just before) marking the booking stopped; a booking settled otherwise keeps its terms.
    if b is None or b.status not in ("stopped", "booked", "pending_payment", "checked_in"):
        return 0
    bill = _paid_registration(s, booking_id)
    if bill is None:
        _void_unpaid_registration(s, provider, booking_id)
        return 0
    amount = bill.retained_amount
    request_refund(s, now, provider, s.get(Payment, bill.payment_id), bill, amount, "session_stopped", booking_id)
    return amount


def after_reschedule(s: Session, now: datetime, old_id: int, new_id: int,
                     provider: PaymentProvider | None = None) -> None:
    """X3 with prepayment: the paid fee moves with the booking; an unpaid bill is dropped."""
    provider = provider or default_provider()
    bill = _paid_registration(s, old_id)
    if bill is None:
        _void_unpaid_registration(s, provider, old_id)
        return
    new = s.get(Booking, new_id)
    if new.fee != bill.total:
        raise DomainError("RESCHEDULE_MISMATCH", "新号源费用不同，请取消后重新预约")
    bill.booking_id = new_id
    s.flush()
    set_status_if(s, new_id, ("pending_payment",), {"status": "booked"})
