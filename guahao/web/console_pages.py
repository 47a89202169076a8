"""The staff console (/console): hospital admin, registration clerk, doctor and platform admin pages.

Staff see only their own hospital: every page that names a hospital, session or booking checks it with
staff.rules.check_hospital, which answers 404 for another hospital's objects. Every change is recorded
in the audit log inside the same transaction.
"""

from datetime import date, time, timedelta
from decimal import Decimal, InvalidOperation
from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from pydantic import ValidationError
from sqlalchemy import func, select

from guahao.attendance import service as bans_service
from guahao.accounts.models import Patient, Person
from guahao.audit.models import AuditEntry
from guahao.audit.service import record
from guahao.billing import service as billing_service
from guahao.billing.deps import get_provider
from guahao.billing.schemas import PriceItemIn
from guahao.booking import service as booking
from guahao.booking.api import appointment_out
from guahao.booking.models import Booking
from guahao.booking.repository import booking_view_query
from guahao.catalog import admin
from guahao.catalog import service as catalog
from guahao.catalog.models import Department, Doctor, Hospital
from guahao.clock import local
from guahao.deps import DB, ClientIp, Now, staff_of_token
from guahao.errors import DomainError
from guahao.notifications import service as notifications
from guahao.notifications.models import Notification
from guahao.notifications.rules import shown_body
from guahao.release import service as release
from guahao.schedule import planning
from guahao.schedule import service as schedule
from guahao.schedule.models import ClinicSession, ScheduleTemplate
from guahao.schedule.rules import NUMBER_TYPES, PERIODS, TITLES, WEEKDAY_LABELS
from guahao.staff import service as staff_service
from guahao.staff.models import StaffUser
from guahao.staff.rules import ROLE_LABELS, Role, check_hospital, check_role
from guahao.staff.service import Staff, administered_hospital
from guahao.visits import service as visits_service
from guahao.web.pagekit import MAX_ID, Id, STAFF_COOKIE, check_csrf, redirect, render, safe_next, set_cookie

router = APIRouter(prefix="/console", include_in_schema=False)
F = Annotated[str, Form()]
IntF = Annotated[int, Form(ge=0, le=MAX_ID)]
Q = Annotated[str, Query(max_length=50)]

ADMINS = (Role.PLATFORM_ADMIN, Role.HOSPITAL_ADMIN)
DESK = (Role.PLATFORM_ADMIN, Role.HOSPITAL_ADMIN, Role.CLERK)


def staff_of(request: Request, *roles: Role) -> Staff:
    st = staff_of_token(request, None)
    if roles:
        check_role(st.role, roles)
    request.state.staff = st
    return st


def page(request: Request, template: str, /, status_code: int = 200, **ctx):
    st = getattr(request.state, "staff", None)
    return render(request, template, status_code=status_code, staff=st,
                  role_label=ROLE_LABELS.get(st.role, "") if st else "", **ctx)


def _own(st: Staff, hospital_id: int) -> None:
    check_hospital(st.role, st.hospital_id, hospital_id)


def _audit(s, now, st: Staff, action: str, target_type: str, target_id, details=None, hospital_id=None, ip=None):
    record(s, now, "staff", st.username, action, target_type, target_id, details, hospital_id=hospital_id, ip=ip)


# ---- login --------------------------------------------------------------------------------------

@router.get("/login")
def login_page(request: Request, next: str = "/console"):
    return page(request, "console/login.html", next=safe_next(next, "/console"), username="")


@router.post("/login")
def login(request: Request, db: DB, now: Now, username: F = "", password: F = "", next: F = "/console",
          csrf_token: F = ""):
    check_csrf(request, csrf_token)
    try:
        with db.reading() as s:
            token = staff_service.login(s, now, username, password)
    except DomainError as e:
        return page(request, "console/login.html", status_code=e.status, error=e.message,
                    next=safe_next(next, "/console"), username=username)
    response = redirect(safe_next(next, "/console"))
    set_cookie(request, response, STAFF_COOKIE, token)
    return response


@router.post("/logout")
def logout(request: Request, csrf_token: F = ""):
    check_csrf(request, csrf_token)
    response = redirect("/console/login")
    response.delete_cookie(STAFF_COOKIE, path="/")
    return response


@router.get("")
def home(request: Request):
    st = staff_of(request)
    target = {Role.PLATFORM_ADMIN: "/console/hospitals", Role.CLERK: "/console/bookings",
              Role.DOCTOR: "/console/today"}.get(st.role, f"/console/hospitals/{st.hospital_id}")
    return redirect(target)


# ---- platform admin: hospitals, hospital admins, audit log, bans --------------------------------

def _hospitals_page(request, db, status_code=200, **extra):
    with db.reading() as s:
        rows = s.execute(select(Hospital, func.count(StaffUser.id)).outerjoin(
            StaffUser, StaffUser.hospital_id == Hospital.id).group_by(Hospital.id).order_by(Hospital.id)).all()
        admins = s.execute(select(StaffUser, Hospital.name).join(Hospital, Hospital.id == StaffUser.hospital_id)
                           .where(StaffUser.role == Role.HOSPITAL_ADMIN).order_by(StaffUser.id)).all()
    return page(request, "console/hospitals.html", status_code=status_code, rows=rows, admins=admins,
                form=extra.pop("form", {}), **extra)


@router.get("/hospitals")
def hospitals(request: Request, db: DB):
    staff_of(request, Role.PLATFORM_ADMIN)
    return _hospitals_page(request, db)


@router.post("/hospitals")
def create_hospital(request: Request, db: DB, now: Now, ip: ClientIp, name: F = "", grade: F = "三级甲等",
                    district: F = "", address: F = "", phone: F = "", csrf_token: F = ""):
    st = staff_of(request, Role.PLATFORM_ADMIN)
    check_csrf(request, csrf_token)
    try:
        with db.transaction() as s:
            h = admin.create_hospital(s, name, grade, district, address, phone)
            _audit(s, now, st, "hospital.create", "hospital", h.id, {"name": h.name}, h.id, ip)
    except DomainError as e:
        return _hospitals_page(request, db, e.status, hospital_error=e.message,
                               form=dict(name=name, district=district, address=address, phone=phone))
    return redirect(f"/console/hospitals/{h.id}")


@router.post("/hospital-admins")
def create_hospital_admin(request: Request, db: DB, now: Now, ip: ClientIp, hospital_id: IntF = 0,
                          username: F = "", display_name: F = "", password: F = "", csrf_token: F = ""):
    st = staff_of(request, Role.PLATFORM_ADMIN)
    check_csrf(request, csrf_token)
    try:
        if not (3 <= len(username.strip()) <= 50) or len(password) < 8:
            raise DomainError("VALIDATION_ERROR", "用户名至少3个字符，密码至少8位")
        with db.transaction() as s:
            u = staff_service.create_staff(s, now, username.strip(), password, Role.HOSPITAL_ADMIN,
                                           display_name.strip() or username.strip(), hospital_id)
            _audit(s, now, st, "staff.create", "staff_user", u.id, {"username": u.username, "role": u.role},
                   hospital_id, ip)
    except DomainError as e:
        return _hospitals_page(request, db, e.status, admin_error=e.message)
    return redirect("/console/hospitals?created=1")


@router.get("/audit")
def audit_log(request: Request, db: DB, action: Q = ""):
    staff_of(request, Role.PLATFORM_ADMIN)
    with db.reading() as s:
        q = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(200)
        if action:
            q = q.where(AuditEntry.action.like(f"{action.replace('%', '')}%"))
        entries = list(s.scalars(q))
    return page(request, "console/audit.html", entries=entries, action=action)


@router.get("/bans")
def bans(request: Request, db: DB, now: Now):
    staff_of(request, Role.PLATFORM_ADMIN)
    with db.reading() as s:
        rows = bans_service.active_bans(s, local(now).date())
    return page(request, "console/bans.html", rows=rows)


@router.post("/bans/{ban_id}/lift")
def lift_ban(request: Request, ban_id: Id, db: DB, now: Now, ip: ClientIp, csrf_token: F = "", reason: F = ""):
    st = staff_of(request, Role.PLATFORM_ADMIN)
    check_csrf(request, csrf_token)
    try:
        with db.transaction() as s:
            bans_service.lift_ban(s, now, ban_id, st.username, reason, ip)  # audited there
    except DomainError as e:
        if e.code == "NOT_FOUND":
            raise
        with db.reading() as s:
            rows = bans_service.active_bans(s, local(now).date())
        return page(request, "console/bans.html", status_code=e.status, rows=rows, error=e.message)
    return redirect("/console/bans")


# ---- hospital admin: settings, departments, doctors, sessions -----------------------------------

def _hospital_ctx(s, st: Staff, hospital_id: int) -> Hospital:
    h = catalog.get_hospital(s, hospital_id)
    _own(st, h.id)
    return h


def _settings_page(request, db, now, st, hospital_id, status_code=200, **extra):
    with db.reading() as s:
        h = _hospital_ctx(s, st, hospital_id)
        today = local(now).date()
        counts = dict(
            departments=s.scalar(select(func.count()).where(Department.hospital_id == h.id)),
            doctors=s.scalar(select(func.count()).where(Doctor.hospital_id == h.id)),
            sessions=s.scalar(select(func.count()).where(ClinicSession.hospital_id == h.id,
                                                         ClinicSession.visit_date >= today)),
            bookings=s.scalar(select(func.count()).where(Booking.hospital_id == h.id, Booking.visit_date == today,
                                                         Booking.status.in_(("booked", "checked_in", "completed")))),
        )
    return page(request, "console/hospital.html", status_code=status_code, h=h, counts=counts, **extra)


@router.get("/hospitals/{hospital_id}")
def hospital(request: Request, hospital_id: Id, db: DB, now: Now, saved: int = 0):
    st = staff_of(request, *ADMINS)
    return _settings_page(request, db, now, st, hospital_id, saved=saved)


def _time(value: str, label: str) -> time:
    try:
        return time.fromisoformat(value.strip())
    except ValueError:
        raise DomainError("VALIDATION_ERROR", f"{label}格式应为 HH:MM") from None


def _int(value: str, label: str) -> int:
    try:
        return int(value.strip())
    except ValueError:
        raise DomainError("VALIDATION_ERROR", f"{label}应为整数") from None


@router.post("/hospitals/{hospital_id}/settings")
def save_settings(request: Request, hospital_id: Id, db: DB, now: Now, ip: ClientIp, release_time: F = "",
                  window_days: F = "", same_day_booking: F = "", cancel_deadline_time: F = "",
                  cancel_minutes_before: F = "", checkin_lead_minutes: F = "", reminder_time: F = "",
                  requires_visit_card: F = "", csrf_token: F = ""):
    st = staff_of(request, *ADMINS)
    check_csrf(request, csrf_token)
    try:
        changes = dict(
            release_time=_time(release_time, "放号时间"), window_days=_int(window_days, "预约周期"),
            same_day_booking=bool(same_day_booking), cancel_deadline_time=_time(cancel_deadline_time, "取消截止时间"),
            cancel_minutes_before=_int(cancel_minutes_before, "就诊前取消分钟数") if cancel_minutes_before.strip() else None,
            checkin_lead_minutes=_int(checkin_lead_minutes, "提前报到分钟数"),
            reminder_time=_time(reminder_time, "提醒时间"))
        with db.transaction() as s:
            h = _hospital_ctx(s, st, hospital_id)
            # Same use case as the staff API: validation, release instants moved, audited there.
            release.update_settings(s, now, h, changes, st.username, ip)
            if h.requires_visit_card != bool(requires_visit_card):
                _audit(s, now, st, "hospital.settings", "hospital", hospital_id,
                       {"requires_visit_card": [h.requires_visit_card, bool(requires_visit_card)]}, hospital_id, ip)
                h.requires_visit_card = bool(requires_visit_card)
    except DomainError as e:
        if e.code == "NOT_FOUND":
            raise
        return _settings_page(request, db, now, st, hospital_id, e.status, error=e.message)
    return redirect(f"/console/hospitals/{hospital_id}?saved=1")


def _departments_page(request, db, st, hospital_id, status_code=200, **extra):
    with db.reading() as s:
        h = _hospital_ctx(s, st, hospital_id)
        depts = catalog.departments(s, h.id)
        n_doctors = dict(s.execute(select(Doctor.department_id, func.count()).where(Doctor.hospital_id == h.id)
                                   .group_by(Doctor.department_id)).all())
    cats = [d for d in depts if d.parent_id is None]
    groups = [(c, [d for d in depts if d.parent_id == c.id]) for c in cats]
    return page(request, "console/departments.html", status_code=status_code, h=h, groups=groups, cats=cats,
                n_doctors=n_doctors, **extra)


@router.get("/hospitals/{hospital_id}/departments")
def departments(request: Request, hospital_id: Id, db: DB):
    st = staff_of(request, *ADMINS)
    return _departments_page(request, db, st, hospital_id)


@router.post("/hospitals/{hospital_id}/departments")
def add_department(request: Request, hospital_id: Id, db: DB, now: Now, ip: ClientIp, name: F = "",
                   parent_id: F = "", location: F = "", is_flagship: F = "", csrf_token: F = ""):
    st = staff_of(request, *ADMINS)
    check_csrf(request, csrf_token)
    try:
        with db.transaction() as s:
            _hospital_ctx(s, st, hospital_id)
            d = admin.add_department(s, hospital_id, name, _int(parent_id, "上级科室") if parent_id else None,
                                     location, bool(is_flagship))
            _audit(s, now, st, "department.create", "department", d.id, {"name": d.name}, hospital_id, ip)
    except DomainError as e:
        if e.code == "NOT_FOUND":
            raise
        return _departments_page(request, db, st, hospital_id, e.status, error=e.message)
    return redirect(f"/console/hospitals/{hospital_id}/departments")


def _doctors_page(request, db, st, hospital_id, status_code=200, **extra):
    with db.reading() as s:
        h = _hospital_ctx(s, st, hospital_id)
        rows = s.execute(select(Doctor, Department.name).join(Department, Department.id == Doctor.department_id)
                         .where(Doctor.hospital_id == h.id).order_by(Department.sort_order, Department.id,
                                                                     Doctor.id)).all()
        clinics = list(s.scalars(select(Department).where(Department.hospital_id == h.id,
                                                          Department.parent_id.is_not(None))
                                 .order_by(Department.sort_order, Department.id)))
    return page(request, "console/doctors.html", status_code=status_code, h=h, rows=rows, clinics=clinics,
                titles=TITLES, **extra)


@router.get("/hospitals/{hospital_id}/doctors")
def doctors(request: Request, hospital_id: Id, db: DB):
    st = staff_of(request, *ADMINS)
    return _doctors_page(request, db, st, hospital_id)


@router.post("/hospitals/{hospital_id}/doctors")
def add_doctor(request: Request, hospital_id: Id, db: DB, now: Now, ip: ClientIp, name: F = "",
               department_id: IntF = 0, title: F = "", specialties: F = "", years: F = "0", csrf_token: F = ""):
    st = staff_of(request, *ADMINS)
    check_csrf(request, csrf_token)
    try:
        with db.transaction() as s:
            _hospital_ctx(s, st, hospital_id)
            doc = admin.add_doctor(s, hospital_id, department_id, name, title, specialties,
                                   _int(years or "0", "从医年限"))
            _audit(s, now, st, "doctor.create", "doctor", doc.id, {"name": doc.name}, hospital_id, ip)
    except DomainError as e:
        if e.code == "NOT_FOUND":
            raise
        return _doctors_page(request, db, st, hospital_id, e.status, error=e.message)
    return redirect(f"/console/hospitals/{hospital_id}/doctors")


def _sessions_page(request, db, now, st, hospital_id, day: date | None, status_code=200, **extra):
    with db.reading() as s:
        h = _hospital_ctx(s, st, hospital_id)
        day = day or local(now).date()
        rows = s.execute(select(ClinicSession, Department.name, Doctor.name, Doctor.title)
                         .join(Department, Department.id == ClinicSession.department_id)
                         .outerjoin(Doctor, Doctor.id == ClinicSession.doctor_id)
                         .where(ClinicSession.hospital_id == h.id, ClinicSession.visit_date == day)
                         .order_by(ClinicSession.period, Department.sort_order, Department.id, Doctor.id)).all()
    views = [dict(cs=cs, dept=dn, doctor=doc, title=t, state=schedule.session_state(cs, now)) for cs, dn, doc, t in rows]
    days = [day + timedelta(days=i) for i in range(-1, 8)]
    return page(request, "console/sessions.html", status_code=status_code, h=h, day=day, days=days,
                sessions=views, **extra)


@router.get("/hospitals/{hospital_id}/sessions")
def sessions(request: Request, hospital_id: Id, db: DB, now: Now, day: date | None = None):
    st = staff_of(request, *ADMINS)
    return _sessions_page(request, db, now, st, hospital_id, day)


@router.post("/sessions/{session_id}/stop")
def stop_session(request: Request, session_id: Id, db: DB, now: Now, ip: ClientIp, csrf_token: F = ""):
    st = staff_of(request, *ADMINS)
    check_csrf(request, csrf_token)
    with db.reading() as s:
        cs = s.get(ClinicSession, session_id)
        if cs is None:
            raise DomainError("NOT_FOUND", "未找到该出诊")
        _own(st, cs.hospital_id)
        hospital_id, day = cs.hospital_id, cs.visit_date
    try:
        with db.transaction() as s:
            # The same 停诊 as the staff API: bookings stopped, patients notified, refunds, audit.
            planning.stop_session(s, now, s.get(ClinicSession, session_id, with_for_update=True),
                                  st.username, "医生停诊", ip)
    except DomainError as e:
        return _sessions_page(request, db, now, st, hospital_id, day, e.status, error=e.message)
    return redirect(f"/console/hospitals/{hospital_id}/sessions?day={day.isoformat()}")


# ---- registration desk: find a booking, its detail, cancel on behalf ----------------------------

@router.get("/bookings")
def find_bookings(request: Request, db: DB, now: Now, serial: Q = "", name: Q = "", last4: Q = ""):
    st = staff_of(request, *DESK)
    serial, name, last4 = serial.strip(), name.strip(), last4.strip().upper()
    results, error = [], None
    if serial or name or last4:
        if not serial and not (name and len(last4) == 4):
            error = "请输入预约流水号，或输入姓名和身份证号后4位"
        else:
            with db.reading() as s:
                q = booking_view_query().add_columns(Person.id_masked).join(Person, Person.id == Booking.person_id)
                if st.role != Role.PLATFORM_ADMIN:
                    q = q.where(Booking.hospital_id == st.hospital_id)
                if serial:
                    q = q.where(Booking.serial_number == serial)
                else:
                    q = q.where(Patient.name == name, Person.id_masked.like(f"%{last4}"))
                rows = s.execute(q.order_by(Booking.visit_date.desc(), Booking.id.desc()).limit(50)).all()
            results = [(appointment_out(r), r.id_masked) for r in rows]
            if not results:
                error = "没有找到符合条件的预约"
    return page(request, "console/bookings.html", results=results, error=error, serial=serial, name=name,
                last4=last4, today=local(now).date())


def _booking_detail(request, db, now, st, booking_id, status_code=200, **extra):
    with db.reading() as s:
        b = s.get(Booking, booking_id)
        if b is None:
            raise DomainError("NOT_FOUND", "未找到该预约")
        _own(st, b.hospital_id)
        row = booking.get_view(s, b.account_id, b.id)
        person = s.get(Person, b.person_id)
        history = s.execute(select(AuditEntry).where(AuditEntry.target_type == "booking",
                                                     AuditEntry.target_id == str(b.id))
                            .order_by(AuditEntry.id)).scalars().all()
    a = appointment_out(row)
    return page(request, "console/booking.html", status_code=status_code, a=a, id_masked=person.id_masked,
                history=history, can_cancel=a.status == "booked" and now < a.cancel_deadline, **extra)


@router.get("/bookings/{booking_id}")
def booking_detail(request: Request, booking_id: Id, db: DB, now: Now):
    st = staff_of(request, *DESK)
    return _booking_detail(request, db, now, st, booking_id)


@router.post("/bookings/{booking_id}/cancel")
def cancel_on_behalf(request: Request, booking_id: Id, db: DB, now: Now, ip: ClientIp, csrf_token: F = ""):
    st = staff_of(request, *DESK)
    check_csrf(request, csrf_token)
    try:
        with db.transaction() as s:
            # At the window: the online deadline does not apply, the refund tiers do (audited there).
            billing_service.cancel_on_behalf(s, now, st, booking_id, get_provider(request), ip)
    except DomainError as e:
        if e.code == "NOT_FOUND":
            raise
        return _booking_detail(request, db, now, st, booking_id, e.status, error=e.message)
    return redirect(f"/console/bookings/{booking_id}")


@router.post("/bookings/{booking_id}/check-in")
def check_in(request: Request, booking_id: Id, db: DB, now: Now, ip: ClientIp, csrf_token: F = ""):
    st = staff_of(request, *DESK)
    check_csrf(request, csrf_token)
    try:
        with db.transaction() as s:
            visits_service.check_in_by_staff(s, now, st, booking_id, ip)  # V1 hours, scoping, audit
    except DomainError as e:
        if e.code == "NOT_FOUND":
            raise
        return _booking_detail(request, db, now, st, booking_id, e.status, error=e.message)
    return redirect(f"/console/bookings/{booking_id}")


# ---- doctor: today's sessions -------------------------------------------------------------------

@router.get("/today")
def today_sessions(request: Request, db: DB, now: Now):
    st = staff_of(request, Role.DOCTOR)
    today = local(now).date()
    with db.reading() as s:
        doc = s.get(Doctor, st.doctor_id) if st.doctor_id else None
        rows = s.execute(select(ClinicSession, Department.name).join(
            Department, Department.id == ClinicSession.department_id).where(
            ClinicSession.doctor_id == st.doctor_id, ClinicSession.visit_date.between(today, today + timedelta(days=6)))
            .order_by(ClinicSession.visit_date, ClinicSession.starts_at)).all()
    todays = [(cs, dn) for cs, dn in rows if cs.visit_date == today]
    upcoming = [(cs, dn) for cs, dn in rows if cs.visit_date > today]
    return page(request, "console/today.html", doc=doc, todays=todays, upcoming=upcoming, today=today)


# ---- platform admin (and a hospital's admin, for its own hospital): notification outbox ---------

OUTBOX_STATUSES = {"pending": "待发送", "sent": "已发送", "failed": "发送失败"}


@router.get("/outbox")
def outbox(request: Request, db: DB, kind: Q = "", status: Q = ""):
    st = staff_of(request, *ADMINS)
    # A hospital admin reads only messages about its own hospital; the platform admin reads them all.
    hospital_id = None if st.role == Role.PLATFORM_ADMIN else st.hospital_id
    with db.reading() as s:
        rows = notifications.outbox(s, hospital_id, kind.strip() or None, 200, 0,
                                    status.strip() if status.strip() in OUTBOX_STATUSES else None)
        kinds = list(s.scalars(select(Notification.kind).distinct().order_by(Notification.kind)))
    messages = [dict(kind=n.kind, phone=n.phone_masked, body=shown_body(n.kind, n.body), status=n.status,
                     attempts=n.attempts, error=n.error, created_at=n.created_at, sent_at=n.sent_at) for n in rows]
    return page(request, "console/outbox.html", messages=messages, kinds=kinds, kind=kind.strip(),
                status=status.strip(), statuses=OUTBOX_STATUSES)


# ---- hospital admin: weekly schedule templates and generating sessions ---------------------------

def _templates_page(request, db, st, hospital_id, status_code=200, **extra):
    with db.reading() as s:
        h = administered_hospital(s, st, hospital_id)
        docs = s.execute(select(Doctor, Department.name).join(Department, Department.id == Doctor.department_id)
                         .where(Doctor.hospital_id == h.id).order_by(Department.sort_order, Department.id,
                                                                     Doctor.id)).all()
        rows = planning.templates_of(s, h.id)
    names = {doc.id: (doc.name, dn) for doc, dn in docs}
    return page(request, "console/templates.html", status_code=status_code, h=h, rows=rows, names=names,
                doctors=docs, weekdays=WEEKDAY_LABELS, periods=PERIODS, number_types=NUMBER_TYPES,
                form=extra.pop("form", {}), **extra)


@router.get("/hospitals/{hospital_id}/templates")
def templates_page(request: Request, hospital_id: Id, db: DB):
    st = staff_of(request, *ADMINS)
    return _templates_page(request, db, st, hospital_id)


@router.post("/hospitals/{hospital_id}/templates")
def add_template(request: Request, hospital_id: Id, db: DB, now: Now, ip: ClientIp, doctor_id: F = "",
                 weekday: F = "", period: F = "", number_type: F = "", capacity: F = "", fee: F = "",
                 online_bookable: F = "", csrf_token: F = ""):
    st = staff_of(request, *ADMINS)
    check_csrf(request, csrf_token)
    form = dict(doctor_id=doctor_id, weekday=weekday, period=period, number_type=number_type, capacity=capacity,
                fee=fee)
    try:
        with db.transaction() as s:
            administered_hospital(s, st, hospital_id)
            doc = s.get(Doctor, _int(doctor_id or "0", "医生"))
            if doc is None or doc.hospital_id != hospital_id:
                raise DomainError("VALIDATION_ERROR", "请选择本院医生")
            cell = dict(weekday=_int(weekday, "星期"), period=period, number_type=number_type,
                        capacity=_int(capacity, "号源数量"), fee=_fen(fee, "挂号费"),
                        online_bookable=bool(online_bookable))
            # Same use case and audit entry as PUT /api/v1/staff/doctors/{id}/templates.
            t = planning.set_template(s, now, doc, **cell)
            _audit(s, now, st, "template.set", "schedule_template", t.id, cell, hospital_id, ip)
    except DomainError as e:
        if e.code == "NOT_FOUND":
            raise
        return _templates_page(request, db, st, hospital_id, e.status, error=e.message, form=form)
    return redirect(f"/console/hospitals/{hospital_id}/templates?saved=1")


@router.post("/templates/{template_id}/remove")
def remove_template(request: Request, template_id: Id, db: DB, now: Now, ip: ClientIp, csrf_token: F = ""):
    st = staff_of(request, *ADMINS)
    check_csrf(request, csrf_token)
    with db.transaction() as s:
        t = s.get(ScheduleTemplate, template_id)
        if t is None or not t.active:
            raise DomainError("NOT_FOUND", "未找到该排班模板")
        administered_hospital(s, st, t.hospital_id)
        planning.remove_template(s, t)
        _audit(s, now, st, "template.remove", "schedule_template", t.id, None, t.hospital_id, ip)
        hospital_id = t.hospital_id
    return redirect(f"/console/hospitals/{hospital_id}/templates")


@router.post("/hospitals/{hospital_id}/generate")
def generate_sessions(request: Request, hospital_id: Id, db: DB, now: Now, ip: ClientIp, csrf_token: F = ""):
    st = staff_of(request, *ADMINS)
    check_csrf(request, csrf_token)
    try:
        with db.transaction() as s:
            h = administered_hospital(s, st, hospital_id)
            # The booking window from tomorrow, as the staff API's default; running it twice adds nothing.
            r = planning.generate(s, now, h)
            _audit(s, now, st, "sessions.generate", "hospital", h.id,
                   {"sessions": r.sessions, "start": "None", "end": "None"}, h.id, ip)
    except DomainError as e:
        if e.code == "NOT_FOUND":
            raise
        return _templates_page(request, db, st, hospital_id, e.status, error=e.message)
    return _templates_page(request, db, st, hospital_id, generated=r)


# ---- hospital admin: price table ----------------------------------------------------------------

PRICE_CATEGORIES = {"registration": "挂号", "exam": "检查检验", "drug": "药品", "special": "特需服务"}


def _prices_page(request, db, st, hospital_id, status_code=200, **extra):
    with db.reading() as s:
        h = _hospital_ctx(s, st, hospital_id)
        items = billing_service.price_table(s, h.id)
    return page(request, "console/prices.html", status_code=status_code, h=h, items=items,
                categories=PRICE_CATEGORIES, form=extra.pop("form", {}), **extra)


@router.get("/hospitals/{hospital_id}/prices")
def prices(request: Request, hospital_id: Id, db: DB):
    st = staff_of(request, *ADMINS)
    return _prices_page(request, db, st, hospital_id)


@router.post("/hospitals/{hospital_id}/prices")
def add_price(request: Request, hospital_id: Id, db: DB, now: Now, ip: ClientIp, code: F = "", name: F = "",
              category: F = "", unit: F = "次", unit_price: F = "", local_pct: F = "0", non_local_pct: F = "0",
              csrf_token: F = ""):
    st = staff_of(request, *ADMINS)
    check_csrf(request, csrf_token)
    form = dict(code=code, name=name, category=category, unit=unit, unit_price=unit_price, local_pct=local_pct,
                non_local_pct=non_local_pct)
    try:
        with db.transaction() as s:
            _hospital_ctx(s, st, hospital_id)
            try:
                # The billing API's own body model, so the page accepts exactly what the API accepts.
                item = PriceItemIn(code=code.strip(), name=name.strip(), category=category,
                                   unit=unit.strip() or "次", unit_price=_fen(unit_price, "单价"),
                                   local_pct=_int(local_pct or "0", "北京医保报销比例"),
                                   non_local_pct=_int(non_local_pct or "0", "京外医保报销比例"))
            except ValidationError as e:
                field = str(e.errors()[0]["loc"][0]) if e.errors() and e.errors()[0]["loc"] else ""
                raise DomainError("VALIDATION_ERROR", f"请检查填写内容：{PRICE_FIELDS.get(field, field)}") from None
            billing_service.add_price_item(s, now, st.username, hospital_id, item.model_dump(), ip)
    except DomainError as e:
        if e.code == "NOT_FOUND":
            raise
        return _prices_page(request, db, st, hospital_id, e.status, error=e.message, form=form)
    return redirect(f"/console/hospitals/{hospital_id}/prices?saved=1")


PRICE_FIELDS = {"code": "收费编码", "name": "项目名称", "category": "类别", "unit": "单位", "unit_price": "单价",
                "local_pct": "北京医保报销比例", "non_local_pct": "京外医保报销比例"}


def _fen(value: str, label: str) -> int:
    """Yuan as staff type it (12 or 12.50) to integer fen; money never goes through float."""
    try:
        d = Decimal(value.strip())
    except (InvalidOperation, ValueError):
        raise DomainError("VALIDATION_ERROR", f"{label}应为金额（元），如 50 或 12.50") from None
    if not d.is_finite() or d < 0 or d != d.quantize(Decimal("0.01")) or d > 100_000:
        raise DomainError("VALIDATION_ERROR", f"{label}应为金额（元），最多两位小数")
    return int(d * 100)
