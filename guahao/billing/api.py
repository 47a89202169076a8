"""Money endpoints: prepayment, provider callbacks, cancel preview, bills, receipts, totals; staff side."""

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse
from sqlalchemy import select

from guahao.billing import ledger, reports, rules, service
from guahao.billing.deps import Provider
from guahao.billing.models import Bill, BillItem, Payment, Refund
from guahao.billing.schemas import (BillItemOut, BillOut, CancelPreviewOut, LedgerOut, OrderBillIn, PayBillsIn,
                                    NotifyAnswer, PaymentOut, PriceItemIn, PriceItemOut, ReceiptOut, RefundPolicyIn,
                                    SummaryOut)
from guahao.booking import service as booking_service
from guahao.catalog.models import Hospital
from guahao.clock import local
from guahao.deps import DB, AccountId, ClientIp, CurrentStaff, Now, ReadSession
from guahao.audit.service import record
from guahao.errors import DomainError
from guahao.staff.rules import Role, check_role

router = APIRouter(prefix="/api/v1", tags=["billing"])
Id = Annotated[int, Path(ge=1, le=2**31 - 1)]


@router.get("/appointments/{booking_id}/cancel-preview", response_model=CancelPreviewOut)
def cancel_preview(booking_id: Id, account_id: AccountId, s: ReadSession, now: Now):
    """What cancelling now would refund under the hospital's tiers (X2), before the patient confirms."""
    b, q, deadline, problem = service.cancel_preview(s, now, account_id, booking_id)
    return CancelPreviewOut(booking_id=b.id, status=b.status, cancellable=problem is None,
                            reason=problem.message if problem else None, cancel_deadline=deadline, paid=q.paid,
                            refund=q.refund, kept=q.kept, tier=q.tier, tier_label=q.label)


def payment_out(pay, url) -> PaymentOut:
    if pay is None:
        return PaymentOut(payment_id=None, out_trade_no=None, amount=0, status="paid", pay_url=None,
                          expires_at=None)
    return PaymentOut(payment_id=pay.id, out_trade_no=pay.out_trade_no, amount=pay.amount, status=pay.status,
                      pay_url=url, expires_at=pay.expires_at)


@router.post("/appointments/{booking_id}/pay", response_model=PaymentOut, status_code=201)
def pay_booking(booking_id: Id, account_id: AccountId, db: DB, now: Now, provider: Provider):
    """Start paying a prepaid booking's fee (M1); pay at `pay_url` before `expires_at`."""
    with db.transaction() as s:
        pay, url = service.pay_booking(s, now, provider, account_id, booking_id,
                                       return_url=f"/billing/paid?booking_id={booking_id}")
        return payment_out(pay, url)


@router.get("/appointments/{booking_id}/billing")
def booking_billing(booking_id: Id, account_id: AccountId, s: ReadSession):
    """The booking's registration bill and its refunds."""
    booking_service.get_view(s, account_id, booking_id)
    bill = s.scalar(select(Bill).where(Bill.booking_id == booking_id, Bill.kind == "registration"))
    refunds = s.scalars(select(Refund).where(Refund.booking_id == booking_id).order_by(Refund.id)).all()
    return {"bill": bill_out(s, bill).model_dump(mode="json") if bill else None,
            "refunds": [dict(id=r.id, amount=r.amount, status=r.status, reason=r.reason,
                             attempts=r.attempts) for r in refunds]}


def bill_out(s, b: Bill) -> BillOut:
    items = s.scalars(select(BillItem).where(BillItem.bill_id == b.id).order_by(BillItem.id)).all()
    return BillOut(id=b.id, kind=b.kind, title=b.title, status=b.status, patient_id=b.patient_id,
                   booking_id=b.booking_id, insurance_type=b.insurance_type, total=b.total,
                   insurance_amount=b.insurance_amount, self_amount=b.self_amount, paid_amount=b.paid_amount,
                   refunded_amount=b.refunded_amount, created_at=b.created_at, paid_at=b.paid_at,
                   items=[BillItemOut(name=i.name, category=i.category, quantity=i.quantity,
                                      unit_price=i.unit_price, amount=i.amount,
                                      insurance_amount=i.insurance_amount, self_amount=i.self_amount)
                          for i in items])


@router.get("/bills", response_model=list[BillOut])
def my_bills(account_id: AccountId, db: DB, now: Now,
             status: Annotated[str | None, Query(pattern="^(unpaid|paid|void)$")] = None):
    with db.transaction() as s:
        service.ensure_pending_bills(s, now, account_id)
        q = select(Bill).where(Bill.account_id == account_id)
        if status:
            q = q.where(Bill.status == status)
        return [bill_out(s, b) for b in s.scalars(q.order_by(Bill.created_at.desc(), Bill.id.desc()))]


@router.post("/payments", response_model=PaymentOut, status_code=201)
def pay_bills(body: PayBillsIn, account_id: AccountId, db: DB, now: Now, provider: Provider):
    """Pay several pending bills together in one payment (M3)."""
    with db.transaction() as s:
        pay, url = service.start_payment(s, now, provider, account_id, body.bill_ids, "/billing/bills")
        return payment_out(pay, url)


@router.get("/payments/{payment_id}", response_model=PaymentOut)
def payment(payment_id: Id, account_id: AccountId, s: ReadSession):
    p = s.get(Payment, payment_id)
    if p is None or p.account_id != account_id:
        raise DomainError("PAYMENT_NOT_FOUND")
    return payment_out(p, f"/sandbox/pay/{p.out_trade_no}" if p.status == "created" else None)


@router.post("/payments/notify/{provider_name}", response_model=NotifyAnswer,
             responses={400: {"model": NotifyAnswer}, 404: {"model": NotifyAnswer}})
async def notify(provider_name: str, request: Request, provider: Provider):
    """The provider's signed payment callback (M2). Idempotent; every call is logged in payment_events."""
    ctype = request.headers.get("content-type", "")
    try:
        fields = dict(await request.form()) if "form" in ctype else await request.json()
    except Exception:  # malformed body: answered, not raised
        fields = {}
    if not isinstance(fields, dict):
        fields = {}
    fields = {str(k): v if isinstance(v, str) else str(v) for k, v in fields.items()}
    db = request.app.state.db
    now = request.app.state.clock.now()
    if provider_name != provider.name:
        return JSONResponse({"code": "FAIL", "message": "unknown provider"}, status_code=404)
    with db.transaction() as s:
        ok, outcome = service.handle_callback(s, now, provider, fields)
    return JSONResponse({"code": "SUCCESS" if ok else "FAIL", "message": outcome}, status_code=200 if ok else 400)


@router.get("/receipts", response_model=list[ReceiptOut])
def my_receipts(account_id: AccountId, s: ReadSession):
    return [ReceiptOut(**r) for r in reports.receipts(s, account_id)]


@router.get("/billing/summary", response_model=SummaryOut)
def summary(account_id: AccountId, s: ReadSession, now: Now, patient_id: Annotated[int, Query(ge=1, le=2**31 - 1)],
            year: Annotated[int | None, Query(ge=2000, le=2100)] = None):
    """Monthly and yearly totals for one patient: insurance paid vs self-paid, refunds."""
    return reports.yearly_summary(s, account_id, patient_id, year or local(now).year)


# ---------------------------------------------------------------- staff

@router.get("/staff/price-items", response_model=list[PriceItemOut])
def price_items(staff: CurrentStaff, s: ReadSession):
    if staff.hospital_id is None:
        return []
    return service.price_table(s, staff.hospital_id)


@router.post("/staff/price-items", response_model=PriceItemOut, status_code=201)
def add_price_item(body: PriceItemIn, staff: CurrentStaff, db: DB, now: Now, ip: ClientIp):
    check_role(staff.role, (Role.HOSPITAL_ADMIN,))
    with db.transaction() as s:
        return service.add_price_item(s, now, staff.username, staff.hospital_id, body.model_dump(), ip)


@router.put("/staff/hospital/billing-settings")
def billing_settings(body: RefundPolicyIn, staff: CurrentStaff, db: DB, now: Now, ip: ClientIp):
    """Hospital admin: require prepayment (M1) and set the refund tiers (X2)."""
    check_role(staff.role, (Role.HOSPITAL_ADMIN,))
    with db.transaction() as s:
        h = s.get(Hospital, staff.hospital_id)
        policy = rules.RefundPolicy(body.day_before_keep_pct, body.same_day_min_minutes, body.same_day_keep_pct,
                                    body.late_keep_pct)
        h.refund_policy = policy.to_json()
        if body.requires_prepayment is not None:
            h.requires_prepayment = body.requires_prepayment
        if "cancel_minutes_before" in body.model_fields_set:
            h.cancel_minutes_before = body.cancel_minutes_before
        out = {"requires_prepayment": h.requires_prepayment, "refund_policy": h.refund_policy,
               "cancel_minutes_before": h.cancel_minutes_before}
        record(s, now, "staff", staff.username, "hospital.billing_settings", "hospital", h.id, out, h.id, ip)
        return out


@router.post("/staff/bills", response_model=BillOut, status_code=201)
def create_bill(body: OrderBillIn, staff: CurrentStaff, db: DB, now: Now, ip: ClientIp):
    """A bill from the doctor's orders (exams, drugs); listed as pending for the patient."""
    with db.transaction() as s:
        bill = service.create_order_bill(s, now, staff, body.booking_id,
                                         [service.OrderLine(i.price_item_id, i.quantity) for i in body.items], ip)
        return bill_out(s, bill)


@router.post("/staff/appointments/{booking_id}/cancel", response_model=CancelPreviewOut)
def cancel_on_behalf(booking_id: Id, staff: CurrentStaff, db: DB, now: Now, ip: ClientIp, provider: Provider):
    with db.transaction() as s:
        q = service.cancel_on_behalf(s, now, staff, booking_id, provider, ip)
        from guahao.booking.models import Booking

        b = s.get(Booking, booking_id)
        return CancelPreviewOut(booking_id=b.id, status=b.status, cancellable=False, reason="已取消",
                                cancel_deadline=now, paid=q.paid, refund=q.refund, kept=q.kept, tier=q.tier,
                                tier_label=q.label)


@router.post("/staff/refunds/retry")
def retry_refunds(staff: CurrentStaff, db: DB, now: Now, provider: Provider):
    check_role(staff.role, (Role.HOSPITAL_ADMIN, Role.PLATFORM_ADMIN))
    with db.transaction() as s:
        # A hospital admin retries only their hospital's refunds (and learns only their counts).
        ok, bad = service.retry_refunds(s, now, provider,
                                        None if staff.role == Role.PLATFORM_ADMIN else staff.hospital_id)
    return {"succeeded": ok, "failed": bad}


@router.get("/staff/ledger", response_model=LedgerOut)
def ledger_check(staff: CurrentStaff, s: ReadSession):
    check_role(staff.role, (Role.PLATFORM_ADMIN,))
    rep = ledger.check(s)
    return LedgerOut(ok=rep.ok, paid=rep.paid, refunded=rep.refunded, retained=rep.retained,
                     refunds_pending=rep.refunds_pending, payments=rep.payments, bookings=rep.bookings,
                     problems=rep.problems[:100])
