"""Patient pages: find a hospital → department → doctor, book, the electronic slip, my appointments.

Every rule lives in the services the JSON API uses; these handlers only gather what a page shows and
turn a DomainError into its Chinese message next to the action that caused it.
"""

from datetime import date, datetime, timedelta
from typing import Annotated

import segno
from fastapi import APIRouter, Form, Query, Request
from sqlalchemy import select

from guahao.accounts import rules as arules
from guahao.accounts.models import Patient
from guahao.booking import rules as brules
from guahao.billing import service as billing_service
from guahao.billing.deps import get_provider
from guahao.booking import service as booking
from guahao.booking.api import appointment_out
from guahao.booking.repository import account_bookings
from guahao.catalog import service as catalog
from guahao.catalog.models import Department, Doctor, Hospital
from guahao.clock import local
from guahao.deps import DB, Now
from guahao.errors import DomainError
from guahao.release.rules import ReleasePolicy, bookable_dates
from guahao.schedule import service as schedule
from guahao.schedule.models import ClinicSession, Slot
from guahao.web.pagekit import MAX_ID, Id, account_id_or_none, check_csrf, redirect, render, require_account

router = APIRouter(include_in_schema=False)
F = Annotated[str, Form()]
IntF = Annotated[int, Form(ge=0, le=MAX_ID)]
Text = Annotated[str, Query(max_length=50)]

# A session with this many places or fewer left is flagged 号源紧张 (display only).
FEW_LEFT = 3
DISTRICTS = ["东城区", "西城区", "朝阳区", "海淀区", "丰台区", "石景山区", "通州区", "昌平区", "大兴区"]
HOT_DEPARTMENTS = ["儿科", "心血管内科", "消化内科", "骨科", "眼科", "妇科", "口腔", "皮肤科"]


def policy_of(h: Hospital) -> ReleasePolicy:
    return ReleasePolicy(h.release_time, h.window_days, h.same_day_booking)


def date_strip(h: Hospital, now: datetime) -> list[date]:
    """Bookable dates, then the dates still waiting for their release, up to the next release day."""
    today = local(now).date()
    first, _ = bookable_dates(today, policy_of(h), local(now).time())
    last = today + timedelta(days=h.window_days + 1)
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def countdown(now: datetime, until: datetime) -> str:
    secs = max(0, int((until - now).total_seconds()))
    d, rest = divmod(secs, 86400)
    hh, rest = divmod(rest, 3600)
    mm = rest // 60
    return (f"{d}天" if d else "") + f"{hh}小时{mm:02d}分"


def session_view(cs: ClinicSession, now: datetime, **extra) -> dict:
    state = schedule.session_state(cs, now)
    remaining = max(0, cs.capacity - cs.booked)
    if state == "available" and not cs.online_bookable:
        state = "offline"
    return dict(cs=cs, state=state, remaining=remaining, tight=state == "available" and remaining <= FEW_LEFT,
                release_at=cs.release_at, countdown=countdown(now, cs.release_at), **extra)


def limits_summary() -> brules.LimitPolicy:
    return brules.LimitPolicy()


# ---- browse -------------------------------------------------------------------------------------

@router.get("/")
def home(request: Request, db: DB, q: Text = "", district: Text = "", department: Text = ""):
    account_id_or_none(request)
    with db.reading() as s:
        hs = catalog.search_hospitals(s, q or None, district or None, department or None, limit=60)
        flags = catalog.flagships(s, [h.id for h in hs])
    return render(request, "patient/home.html", hospitals=hs, flags=flags, q=q, district=district,
                  department=department, districts=DISTRICTS, hot=HOT_DEPARTMENTS,
                  searched=bool(q or district or department))


@router.get("/hospitals/{hospital_id}")
def hospital_page(request: Request, hospital_id: Id, db: DB, now: Now):
    account_id_or_none(request)
    with db.reading() as s:
        h = catalog.get_hospital(s, hospital_id)
        depts = catalog.departments(s, hospital_id)
    groups = [(c, [d for d in depts if d.parent_id == c.id]) for c in depts if c.parent_id is None]
    flagships = [d for d in depts if d.is_flagship]
    today = local(now).date()
    first, last = bookable_dates(today, policy_of(h), local(now).time())
    deadline_example = brules.cancel_deadline(
        first, h.release_time, brules.CancelPolicy(h.cancel_deadline_time, h.cancel_minutes_before))
    return render(request, "patient/hospital.html", h=h, groups=groups, flagships=flagships,
                  first=first, last=last, limits=limits_summary(), deadline_example=deadline_example)


@router.get("/departments/{department_id}")
def department_page(request: Request, department_id: Id, db: DB, now: Now, day: date | None = None):
    account_id_or_none(request)
    with db.reading() as s:
        dept = catalog.get_department(s, department_id)
        h = catalog.get_hospital(s, dept.hospital_id)
        parent = s.get(Department, dept.parent_id) if dept.parent_id else None
        children = [] if parent else list(s.scalars(select(Department).where(Department.parent_id == dept.id)
                                                     .order_by(Department.sort_order, Department.id)))
        names = {d.id: d.name for d in children}
        strip = date_strip(h, now)
        rows = schedule.sessions_for(s, dept.id, strip[0], None, strip[-1])
    by_day: dict[date, list] = {d: [] for d in strip}
    for r in rows:
        if r.ClinicSession.visit_date in by_day:
            by_day[r.ClinicSession.visit_date].append(
                session_view(r.ClinicSession, now, doctor_name=r.doctor_name, doctor_title=r.doctor_title,
                             clinic=names.get(r.ClinicSession.department_id)))
    summary = {}
    for d, views in by_day.items():
        states = {v["state"] for v in views}
        summary[d] = ("有号" if "available" in states else "即将放号" if "not_released" in states
                      else "约满" if "full" in states else "无号")
    if day not in by_day:
        day = next((d for d in strip if summary[d] == "有号"), strip[0])
    return render(request, "patient/department.html", dept=dept, parent=parent, children=children, h=h, strip=strip,
                  summary=summary, day=day, sessions=by_day[day], now=now)


@router.get("/doctors/{doctor_id}")
def doctor_page(request: Request, doctor_id: Id, db: DB, now: Now):
    account_id_or_none(request)
    with db.reading() as s:
        doc = catalog.get_doctor(s, doctor_id)
        dept = s.get(Department, doc.department_id)
        h = s.get(Hospital, doc.hospital_id)
        strip = date_strip(h, now)
        rows = schedule.sessions_for(s, None, strip[0], doc.id, strip[-1])
    sessions = [session_view(r.ClinicSession, now) for r in rows]
    return render(request, "patient/doctor.html", doc=doc, dept=dept, h=h, sessions=sessions)


# ---- booking ------------------------------------------------------------------------------------

def _session_context(s, session_id: int, now: datetime):
    row = s.execute(select(ClinicSession, Hospital, Department, Doctor)
                    .join(Hospital, Hospital.id == ClinicSession.hospital_id)
                    .join(Department, Department.id == ClinicSession.department_id)
                    .outerjoin(Doctor, Doctor.id == ClinicSession.doctor_id)
                    .where(ClinicSession.id == session_id)).one_or_none()
    if row is None:
        raise DomainError("NOT_FOUND", "未找到该出诊号源")
    cs, h, dept, doc = row
    slots = [slot for slot, held in schedule.slots_with_state(s, [cs.id])[cs.id] if not held]
    return dict(view=session_view(cs, now), cs=cs, h=h, dept=dept, doc=doc, free_slots=slots)


def _deadline(ctx: dict, slot) -> datetime:
    h = ctx["h"]
    return brules.cancel_deadline(ctx["cs"].visit_date, slot.starts_at if slot else ctx["cs"].starts_at,
                                  brules.CancelPolicy(h.cancel_deadline_time, h.cancel_minutes_before))


def _book_page(request, db, now, account_id, session_id, status_code=200, **extra):
    with db.reading() as s:
        ctx = _session_context(s, session_id, now)
        patients = list(s.scalars(select(Patient).where(Patient.account_id == account_id,
                                                        Patient.removed_at.is_(None)).order_by(Patient.id)))
    chosen_slot = extra.pop("slot_id", None)
    slot = next((x for x in ctx["free_slots"] if x.id == chosen_slot), None) or \
        (ctx["free_slots"][0] if ctx["free_slots"] else None)
    return render(request, "patient/book.html", status_code=status_code, patients=patients,
                  insurance=list(arules.INSURANCE_LABELS.items()), slot=slot,
                  deadline=_deadline(ctx, slot), **ctx, **extra)


@router.get("/sessions/{session_id}/book")
def book_page(request: Request, session_id: Id, db: DB, now: Now):
    account_id = require_account(request)
    return _book_page(request, db, now, account_id, session_id)


@router.post("/sessions/{session_id}/book")
def book(request: Request, session_id: Id, db: DB, now: Now, slot_id: IntF = 0, patient_id: IntF = 0,
         insurance_type: F = "self_pay", csrf_token: F = ""):
    account_id = require_account(request)
    check_csrf(request, csrf_token)
    try:
        if insurance_type not in arules.INSURANCE_LABELS:
            raise DomainError("VALIDATION_ERROR", "请选择医保类型")
        with db.transaction() as s:
            belongs = s.scalar(select(ClinicSession.id).join_from(
                ClinicSession, Slot, Slot.session_id == ClinicSession.id).where(
                Slot.id == slot_id, ClinicSession.id == session_id))
            if not belongs:
                raise DomainError("NOT_FOUND", "请选择一个就诊序号")
            booking_id = booking.book(s, now, account_id, slot_id, patient_id, insurance_type)
    except DomainError as e:
        return _book_page(request, db, now, account_id, session_id, status_code=e.status, error=e.message,
                          slot_id=slot_id, patient_id=patient_id, insurance_type=insurance_type)
    return redirect(f"/appointments/{booking_id}?booked=1")


# ---- my appointments ----------------------------------------------------------------------------

def qr_svg(text: str) -> str:
    return segno.make(text, micro=False).svg_inline(scale=5, border=2, dark="#0b2e59")


@router.get("/appointments")
def appointments(request: Request, db: DB, now: Now):
    account_id = require_account(request)
    with db.reading() as s:
        rows = [appointment_out(r) for r in account_bookings(s, account_id)]
    today = local(now).date()
    upcoming = sorted((a for a in rows if a.status in ("booked", "checked_in") and a.visit_date >= today),
                      key=lambda a: (a.visit_date, a.period_start))
    past = [a for a in rows if a not in upcoming]
    return render(request, "patient/appointments.html", upcoming=upcoming, past=past, now=now,
                  insurance=arules.INSURANCE_LABELS)


def _slip(request, db, now, account_id, booking_id, status_code=200, **extra):
    with db.reading() as s:
        row = booking.get_view(s, account_id, booking_id)
        a = appointment_out(row)
        quote = billing_service.quote_cancel(s, now, row.Booking)  # shown before the patient confirms (X2)
    return render(request, "patient/slip.html", status_code=status_code, a=a, qr=qr_svg(a.serial_number),
                  now=now, insurance=arules.INSURANCE_LABELS, quote=quote,
                  can_cancel=a.status in ("booked", "pending_payment") and now < a.cancel_deadline, **extra)


@router.get("/appointments/{booking_id}")
def slip(request: Request, booking_id: Id, db: DB, now: Now, booked: int = 0, moved: int = 0,
         cancelled: int = 0):
    account_id = require_account(request)
    return _slip(request, db, now, account_id, booking_id, booked=booked, moved=moved, cancelled=cancelled)


@router.post("/appointments/{booking_id}/cancel")
def cancel(request: Request, booking_id: Id, db: DB, now: Now, csrf_token: F = ""):
    account_id = require_account(request)
    check_csrf(request, csrf_token)
    try:
        with db.transaction() as s:
            # The same use case as the API: cancel (X1) and refund by the hospital's tiers (X2).
            billing_service.cancel_booking(s, now, account_id, booking_id, get_provider(request))
    except DomainError as e:
        return _slip(request, db, now, account_id, booking_id, status_code=e.status, cancel_error=e.message)
    return redirect(f"/appointments/{booking_id}?cancelled=1")


def _reschedule_page(request, db, now, account_id, booking_id, status_code=200, **extra):
    with db.reading() as s:
        row = booking.get_view(s, account_id, booking_id)
        a = appointment_out(row)
        h = s.get(Hospital, row.Booking.hospital_id)
        strip = date_strip(h, now)
        options = []
        if row.Booking.doctor_id:
            rows = schedule.sessions_for(s, None, strip[0], row.Booking.doctor_id, strip[-1])
            same = [r.ClinicSession for r in rows if r.ClinicSession.number_type == row.Booking.number_type]
            free = schedule.slots_with_state(s, [cs.id for cs in same])
            for cs in same:
                view = session_view(cs, now)
                slots = [sl for sl, held in free[cs.id] if not held and sl.id != row.Booking.slot_id]
                if view["state"] == "available" and slots:
                    options.append(dict(view, slots=slots))
    return render(request, "patient/reschedule.html", status_code=status_code, a=a, options=options, **extra)


@router.get("/appointments/{booking_id}/reschedule")
def reschedule_page(request: Request, booking_id: Id, db: DB, now: Now):
    account_id = require_account(request)
    return _reschedule_page(request, db, now, account_id, booking_id)


@router.post("/appointments/{booking_id}/reschedule")
def reschedule(request: Request, booking_id: Id, db: DB, now: Now, slot_id: IntF = 0, csrf_token: F = ""):
    account_id = require_account(request)
    check_csrf(request, csrf_token)
    try:
        with db.transaction() as s:
            new_id = booking.reschedule(s, now, account_id, booking_id, slot_id)
            billing_service.after_reschedule(s, now, booking_id, new_id, get_provider(request))
    except DomainError as e:
        return _reschedule_page(request, db, now, account_id, booking_id, status_code=e.status, error=e.message)
    return redirect(f"/appointments/{new_id}?moved=1")
