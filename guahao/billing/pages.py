"""Money pages: pay a booking, pending bills paid together, cancel with a refund preview, receipts (HTML,
PDF), yearly totals; and the sandbox provider's payer page."""

from typing import Annotated

from fastapi import APIRouter, Form, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select

from guahao.billing import reports, rules, service
from guahao.billing.deps import Provider
from guahao.billing.models import Bill, BillItem, SandboxTxn
from guahao.booking.repository import account_booking
from guahao.clock import local
from guahao.deps import DB, Now
from guahao.errors import DomainError
from guahao.visits.cookies import PageAccount, login_redirect
from guahao.web.templating import templates

router = APIRouter(include_in_schema=False)
Id = Annotated[int, Path(ge=1, le=2**31 - 1)]


def _row(s, account_id, booking_id):
    row = account_booking(s, account_id, booking_id)
    if row is None:
        raise DomainError("NOT_FOUND", "未找到该预约")
    return row


@router.get("/billing/pay/{booking_id}", response_class=HTMLResponse)
def pay_page(request: Request, booking_id: Id, account_id: PageAccount, db: DB, now: Now):
    if account_id is None:
        return login_redirect(request)
    return _pay_page(request, booking_id, account_id, db, now)


def _pay_page(request, booking_id, account_id, db, now, messages=(), status_code=200):
    with db.transaction() as s:
        row = _row(s, account_id, booking_id)
        b = row.Booking
        bill = service.registration_bill(s, now, b) if b.status == "pending_payment" else s.scalar(
            select(Bill).where(Bill.booking_id == b.id, Bill.kind == "registration"))
        return templates.TemplateResponse(request, "billing/pay.html", {
            "row": row, "bill": bill, "deadline": rules.payment_deadline(b.created_at),
            "messages": list(messages)}, status_code=status_code)


@router.post("/billing/pay/{booking_id}")
def pay_start(request: Request, booking_id: Id, account_id: PageAccount, db: DB, now: Now, provider: Provider):
    if account_id is None:
        return login_redirect(request)
    try:
        with db.transaction() as s:
            pay, url = service.pay_booking(s, now, provider, account_id, booking_id,
                                           return_url=f"/billing/paid?booking_id={booking_id}")
    except DomainError as e:
        if e.code == "NOT_FOUND":
            raise
        return _pay_page(request, booking_id, account_id, db, now, [{"kind": "error", "text": e.message}], e.status)
    return RedirectResponse(url or f"/billing/paid?booking_id={booking_id}", status_code=303)


@router.get("/billing/paid", response_class=HTMLResponse)
def paid_page(request: Request, account_id: PageAccount, db: DB,
              booking_id: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None):
    if account_id is None:
        return login_redirect(request)
    with db.reading() as s:
        row = _row(s, account_id, booking_id) if booking_id else None
    return templates.TemplateResponse(request, "billing/paid.html", {"row": row})


def _bills_page(request, s, account_id, messages=(), status_code=200):
    bills = s.scalars(select(Bill).where(Bill.account_id == account_id)
                      .order_by(Bill.created_at.desc(), Bill.id.desc())).all()
    items = {b.id: s.scalars(select(BillItem).where(BillItem.bill_id == b.id)).all() for b in bills}
    return templates.TemplateResponse(request, "billing/bills.html", {
        "unpaid": [b for b in bills if b.status == "unpaid"], "paid": [b for b in bills if b.status == "paid"],
        "items": items, "messages": list(messages)}, status_code=status_code)


@router.get("/billing/bills", response_class=HTMLResponse)
def bills_page(request: Request, account_id: PageAccount, db: DB, now: Now):
    if account_id is None:
        return login_redirect(request)
    with db.transaction() as s:
        service.ensure_pending_bills(s, now, account_id)
        return _bills_page(request, s, account_id)


@router.post("/billing/bills/pay")
async def bills_pay(request: Request, account_id: PageAccount, db: DB, now: Now, provider: Provider):
    if account_id is None:
        return login_redirect(request)
    form = await request.form()
    try:
        ids = [int(x) for x in form.getlist("bill_id")]
        with db.transaction() as s:
            pay, url = service.start_payment(s, now, provider, account_id, ids, "/billing/bills")
    except (ValueError, DomainError) as e:
        if isinstance(e, DomainError) and e.code == "NOT_FOUND":  # another account's bill: as if none
            raise
        text = e.message if isinstance(e, DomainError) else "请选择账单"
        with db.reading() as s:
            return _bills_page(request, s, account_id, [{"kind": "error", "text": text}], 409)
    return RedirectResponse(url or "/billing/bills", status_code=303)


@router.get("/billing/cancel/{booking_id}", response_class=HTMLResponse)
def cancel_page(request: Request, booking_id: Id, account_id: PageAccount, db: DB, now: Now):
    """X2: the patient sees the refund before confirming the cancel."""
    if account_id is None:
        return login_redirect(request)
    with db.reading() as s:
        row = _row(s, account_id, booking_id)
        _, quote, deadline, problem = service.cancel_preview(s, now, account_id, booking_id)
    return templates.TemplateResponse(request, "billing/cancel.html", {
        "row": row, "quote": quote, "deadline": deadline, "problem": problem, "done": False})


@router.post("/billing/cancel/{booking_id}", response_class=HTMLResponse)
def cancel_confirm(request: Request, booking_id: Id, account_id: PageAccount, db: DB, now: Now,
                   provider: Provider):
    if account_id is None:
        return login_redirect(request)
    try:
        with db.transaction() as s:
            quote = service.cancel_booking(s, now, account_id, booking_id, provider)
        problem, done = None, True
    except DomainError as e:
        if e.code == "NOT_FOUND":
            raise
        quote, problem, done = None, e, False
    with db.reading() as s:
        row = _row(s, account_id, booking_id)
        _, q2, deadline, _p = service.cancel_preview(s, now, account_id, booking_id)
    return templates.TemplateResponse(request, "billing/cancel.html", {
        "row": row, "quote": quote or q2, "deadline": deadline, "problem": problem, "done": done},
        status_code=200 if done else problem.status)


@router.get("/billing/receipts", response_class=HTMLResponse)
def receipts_page(request: Request, account_id: PageAccount, db: DB, now: Now,
                  year: Annotated[int | None, Query(ge=2000, le=2100)] = None):
    if account_id is None:
        return login_redirect(request)
    from guahao.accounts.models import Patient

    year = year or local(now).year
    with db.reading() as s:
        items = reports.receipts(s, account_id)
        patients = s.scalars(select(Patient).where(Patient.account_id == account_id,
                                                   Patient.removed_at.is_(None))).all()
        sums = [(p, reports.yearly_summary(s, account_id, p.id, year)) for p in patients]
    return templates.TemplateResponse(request, "billing/receipts.html",
                                      {"receipts": items, "sums": sums, "year": year})


@router.get("/billing/receipts/{kind}/{rid}.pdf")
def receipt_pdf(kind: str, rid: Id, request: Request, account_id: PageAccount, db: DB):
    if account_id is None:
        return login_redirect(request)
    with db.reading() as s:
        data = reports.receipt(s, account_id, kind, rid)
    return Response(reports.receipt_pdf(data), media_type="application/pdf",
                    headers={"Content-Disposition": f'inline; filename="receipt-{data["number"]}.pdf"'})


@router.get("/billing/receipts/{kind}/{rid}", response_class=HTMLResponse)
def receipt_html(kind: str, rid: Id, request: Request, account_id: PageAccount, db: DB):
    if account_id is None:
        return login_redirect(request)
    with db.reading() as s:
        data = reports.receipt(s, account_id, kind, rid)
    return templates.TemplateResponse(request, "billing/receipt.html", {"r": data, "kind": kind, "rid": rid})


# ---------------------------------------------------------------- the sandbox provider's own pages

def _sandbox_allowed(request: Request) -> None:
    # The payer page takes anyone's word that they paid: never offered by a production deployment.
    if request.app.state.settings.environment == "production":
        raise DomainError("NOT_FOUND")


@router.get("/sandbox/pay/{out_trade_no}", response_class=HTMLResponse)
def sandbox_pay(request: Request, out_trade_no: str, db: DB):
    _sandbox_allowed(request)
    with db.reading() as s:
        txn = s.get(SandboxTxn, out_trade_no[:32])
    if txn is None:
        raise DomainError("PAYMENT_NOT_FOUND")
    return templates.TemplateResponse(request, "billing/sandbox_pay.html", {"txn": txn})


@router.post("/sandbox/pay/{out_trade_no}/confirm", response_class=HTMLResponse)
def sandbox_confirm(request: Request, out_trade_no: str, db: DB, now: Now, provider: Provider,
                    action: Annotated[str, Form(pattern="^(pay|cancel)$")] = "pay"):
    """The payer pays; the sandbox then delivers its signed notification through the real callback path."""
    _sandbox_allowed(request)
    with db.transaction() as s:
        txn = s.get(SandboxTxn, out_trade_no[:32])
        if txn is None:
            raise DomainError("PAYMENT_NOT_FOUND")
        return_url = txn.return_url or "/"
        if action == "cancel":
            return RedirectResponse(return_url.replace("/billing/paid", "/billing/bills"), status_code=303)
        notification = provider.pay(s, now, out_trade_no) if hasattr(provider, "pay") else None
        if notification is None:
            return templates.TemplateResponse(request, "billing/sandbox_pay.html", {
                "txn": txn, "messages": [{"kind": "error", "text": "该订单已关闭，不能支付"}]}, status_code=409)
    with db.transaction() as s:
        service.handle_callback(s, now, provider, notification)
    return RedirectResponse(return_url, status_code=303)

