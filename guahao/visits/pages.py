"""Visit-day pages: the patient's queue view (polled), the clerk's check-in desk, the doctor's queue."""

from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.responses import HTMLResponse

from guahao.booking.repository import account_booking
from guahao.booking.service import STATUS_LABELS
from guahao.clock import local
from guahao.deps import DB, ClientIp, CurrentStaff, Now
from guahao.errors import DomainError
from guahao.staff.rules import Role, check_role
from guahao.visits import service
from guahao.visits.api import ACTIONS, session_queue_out
from guahao.visits.cookies import PageAccount, login_redirect
from guahao.web.templating import templates

router = APIRouter(include_in_schema=False)
Id = Annotated[int, Path(ge=1, le=2**31 - 1)]
DESK = (Role.PLATFORM_ADMIN, Role.HOSPITAL_ADMIN, Role.CLERK)


def _patient_page(request, s, now, account_id, booking_id, messages=(), status_code=200):
    row = account_booking(s, account_id, booking_id)
    if row is None:
        raise DomainError("NOT_FOUND", "未找到该预约")
    view = service.queue_view(s, now, booking_id, account_id)
    return templates.TemplateResponse(request, "visits/patient_queue.html",
                                      {"row": row, "view": view, "messages": list(messages)},
                                      status_code=status_code)


@router.get("/visits/{booking_id}", response_class=HTMLResponse)
def patient_queue(request: Request, booking_id: Id, account_id: PageAccount, db: DB, now: Now):
    if account_id is None:
        return login_redirect(request)
    with db.reading() as s:
        return _patient_page(request, s, now, account_id, booking_id)


@router.get("/visits/{booking_id}/status", response_class=HTMLResponse)
def patient_queue_status(request: Request, booking_id: Id, account_id: PageAccount, db: DB, now: Now):
    if account_id is None:
        raise DomainError("UNAUTHORIZED")
    with db.reading() as s:
        view = service.queue_view(s, now, booking_id, account_id)
    return templates.TemplateResponse(request, "visits/_status.html", {"view": view})


@router.post("/visits/{booking_id}/check-in", response_class=HTMLResponse)
def patient_check_in(request: Request, booking_id: Id, account_id: PageAccount, db: DB, now: Now):
    if account_id is None:
        return login_redirect(request)
    msg, code = {"kind": "ok", "text": "报到成功，请留意叫号"}, 200
    try:
        with db.transaction() as s:
            service.check_in_online(s, now, account_id, booking_id)
    except DomainError as e:
        if e.code == "NOT_FOUND":
            raise
        msg, code = {"kind": "error", "text": e.message}, e.status
    with db.reading() as s:
        return _patient_page(request, s, now, account_id, booking_id, [msg], code)


def _checkin_page(request, s, now, staff, q: dict, messages=(), status_code=200):
    results = None
    if q.get("serial") or (q.get("name") and q.get("id_last4")):
        try:
            results = service.find_for_checkin(s, now, staff, q.get("serial"), q.get("name"), q.get("id_last4"))
        except DomainError as e:
            messages = [*messages, {"kind": "error", "text": e.message}]
    return templates.TemplateResponse(request, "visits/checkin.html", {
        "staff": staff, "q": q, "results": results, "labels": STATUS_LABELS, "messages": list(messages)},
        status_code=status_code)


@router.get("/console/checkin", response_class=HTMLResponse)
def checkin_desk(request: Request, staff: CurrentStaff, db: DB, now: Now, serial: str | None = None,
                 name: str | None = None, id_last4: str | None = None):
    check_role(staff.role, DESK)
    with db.reading() as s:
        return _checkin_page(request, s, now, staff, dict(serial=serial, name=name, id_last4=id_last4))


@router.post("/console/checkin/{booking_id}", response_class=HTMLResponse)
def checkin_at_desk(request: Request, booking_id: Id, staff: CurrentStaff, db: DB, now: Now, ip: ClientIp):
    msg, code = None, 200
    try:
        with db.transaction() as s:
            service.check_in_by_staff(s, now, staff, booking_id, ip)
        msg = {"kind": "ok", "text": "报到成功"}
    except DomainError as e:
        if e.code in ("NOT_FOUND", "FORBIDDEN"):  # the page below would show the booking's serial number
            raise
        msg, code = {"kind": "error", "text": e.message}, e.status
    with db.reading() as s:
        from guahao.booking.models import Booking

        b = s.get(Booking, booking_id)
        q = dict(serial=b.serial_number if b else None, name=None, id_last4=None)
        return _checkin_page(request, s, now, staff, q, [msg], code)


@router.post("/console/checkin/{booking_id}/cancel", response_class=HTMLResponse)
def cancel_at_desk(request: Request, booking_id: Id, staff: CurrentStaff, db: DB, now: Now, ip: ClientIp):
    """代取消: the clerk cancels for the patient; the refund follows the same tiers (X2) and is audited."""
    from guahao.billing.deps import get_provider
    from guahao.billing.service import cancel_on_behalf

    code = 200
    try:
        with db.transaction() as s:
            quote = cancel_on_behalf(s, now, staff, booking_id, get_provider(request), ip)
        msg = {"kind": "ok", "text": f"已取消，退款 {quote.refund / 100:.2f} 元" if quote.paid else "已取消"}
    except DomainError as e:
        if e.code in ("NOT_FOUND", "FORBIDDEN"):  # the page below would show the booking's serial number
            raise
        msg, code = {"kind": "error", "text": e.message}, e.status
    with db.reading() as s:
        from guahao.booking.models import Booking

        b = s.get(Booking, booking_id)
        return _checkin_page(request, s, now, staff, dict(serial=b.serial_number, name=None, id_last4=None),
                             [msg], code)


@router.get("/console/queue", response_class=HTMLResponse)
def doctor_sessions(request: Request, staff: CurrentStaff, db: DB, now: Now):
    day = local(now).date()
    with db.reading() as s:
        rows = service.staff_sessions_on(s, staff, day)
    return templates.TemplateResponse(request, "visits/doctor_sessions.html",
                                      {"staff": staff, "sessions": rows, "day": day})


def _price_items(s, staff):
    from sqlalchemy import select

    from guahao.billing.models import PriceItem

    return s.scalars(select(PriceItem).where(
        PriceItem.hospital_id == staff.hospital_id, PriceItem.is_active.is_(True),
        PriceItem.category != "registration").order_by(PriceItem.category, PriceItem.code)).all()


def _doctor_page(request, db, now, staff, session_id, messages=(), status_code=200):
    with db.reading() as s:
        q = session_queue_out(s, now, staff, session_id)
        items = _price_items(s, staff)
    return templates.TemplateResponse(request, "visits/doctor_queue.html", {
        "staff": staff, "q": q, "price_items": items, "messages": list(messages)}, status_code=status_code)


@router.get("/console/queue/{session_id}", response_class=HTMLResponse)
def doctor_queue(request: Request, session_id: Id, staff: CurrentStaff, db: DB, now: Now):
    return _doctor_page(request, db, now, staff, session_id)


@router.post("/console/queue/{session_id}/bill", response_class=HTMLResponse)
async def doctor_bill(request: Request, session_id: Id, staff: CurrentStaff, db: DB, now: Now, ip: ClientIp):
    """The doctor's orders for the patient being seen become a pending bill (M3)."""
    from guahao.billing.service import OrderLine, create_order_bill

    form = await request.form()
    msg, code = None, 200
    try:
        lines = [OrderLine(int(x)) for x in form.getlist("price_item_id")]
        with db.transaction() as s:
            calling = service.session_queue(s, now, staff, session_id)[1]
            current = next((r.QueueEntry for r in calling if r.QueueEntry.state == "calling"), None)
            if current is None:
                raise DomainError("NOT_CALLING")
            bill = create_order_bill(s, now, staff, current.booking_id, lines, ip)
            msg = {"kind": "ok", "text": f"已开单：合计 {bill.total / 100:.2f} 元，医保 {bill.insurance_amount / 100:.2f} 元，"
                                         f"自付 {bill.self_amount / 100:.2f} 元"}
    except ValueError:
        msg, code = {"kind": "error", "text": "请选择收费项目"}, 422
    except DomainError as e:
        if e.code in ("NOT_FOUND", "FORBIDDEN") and "收费项目" not in e.message:
            raise
        msg, code = {"kind": "error", "text": e.message}, e.status
    return _doctor_page(request, db, now, staff, session_id, [msg], code)


@router.get("/console/queue/{session_id}/list", response_class=HTMLResponse)
def doctor_queue_list(request: Request, session_id: Id, staff: CurrentStaff, db: DB, now: Now):
    with db.reading() as s:
        q = session_queue_out(s, now, staff, session_id)
    return templates.TemplateResponse(request, "visits/_doctor_queue.html", {"q": q})


@router.post("/console/queue/{session_id}/{action}", response_class=HTMLResponse)
def doctor_action(request: Request, session_id: Id,
                  action: Annotated[str, Path(pattern="^(call-next|pass|complete)$")],
                  staff: CurrentStaff, db: DB, now: Now):
    texts = {"call-next": "已叫号", "pass": "已过号", "complete": "已完成就诊"}
    msg, code = {"kind": "ok", "text": texts[action]}, 200
    try:
        with db.transaction() as s:
            ACTIONS[action](s, now, staff, session_id)
    except DomainError as e:
        if e.code in ("NOT_FOUND", "FORBIDDEN"):
            raise
        msg, code = {"kind": "error", "text": e.message}, e.status
    return _doctor_page(request, db, now, staff, session_id, [msg], code)
