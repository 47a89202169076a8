"""Check-in (V1) and the queue (V2). Never commits: the caller owns the transaction.

Every queue action first locks its session row (SELECT … FOR UPDATE on PostgreSQL; SQLite writers are
serialised by BEGIN IMMEDIATE), and state changes are conditional updates besides: two screens pressing
"call next" at once call one patient, never the same patient twice.
"""

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session

from guahao.accounts.models import Patient, Person
from guahao.audit.service import record
from guahao.booking.models import Booking
from guahao.booking.repository import set_status_if
from guahao.booking.service import STATUS_LABELS
from guahao.catalog.models import Department, Doctor, Hospital
from guahao.clock import local
from guahao.errors import DomainError
from guahao.schedule.models import ClinicSession
from guahao.staff.rules import Role, check_hospital, check_role
from guahao.staff.service import Staff
from guahao.visits import rules
from guahao.visits.models import QueueEntry

Q = QueueEntry.__table__


def _booking_context(s: Session, booking_id: int):
    return s.execute(
        select(Booking, ClinicSession.ends_at.label("session_end"), ClinicSession.status.label("session_status"),
               Hospital.checkin_lead_minutes)
        .join(ClinicSession, ClinicSession.id == Booking.session_id)
        .join(Hospital, Hospital.id == Booking.hospital_id)
        .where(Booking.id == booking_id)
    ).one_or_none()


def window_of(row) -> rules.CheckinWindow:
    b = row.Booking
    return rules.checkin_window(b.visit_date, b.period_start, row.session_end, row.checkin_lead_minutes)


def _check_in(s: Session, now: datetime, row, channel: str) -> None:
    b: Booking = row.Booking
    if b.status in ("checked_in", "completed"):
        raise DomainError("ALREADY_CHECKED_IN")
    if b.status == "pending_payment":
        raise DomainError("NOT_PAID", "请先支付挂号费再报到")
    if b.status != "booked":
        raise DomainError("BOOKING_NOT_ACTIVE",
                          f"该预约状态为“{STATUS_LABELS.get(b.status, b.status)}”，不能报到")
    if row.session_status != "open":
        raise DomainError("SESSION_STOPPED")
    rules.check_checkin_time(now, b.visit_date, window_of(row))
    # Conditional: a concurrent no-show sweep or a second check-in finds nothing left to change.
    if not set_status_if(s, b.id, ("booked",), {"status": "checked_in"}):
        raise DomainError("BOOKING_NOT_ACTIVE", "该预约状态已变化，请刷新后重试")
    s.execute(insert(Q).values(booking_id=b.id, session_id=b.session_id, doctor_id=b.doctor_id, seq=b.seq,
                               sort_key=rules.initial_key(b.seq), state="waiting", channel=channel,
                               checked_in_at=now, pass_count=0, call_count=0))


def check_in_online(s: Session, now: datetime, account_id: int, booking_id: int) -> None:
    """我已到达: the patient checks in from the phone within the check-in hours."""
    row = _booking_context(s, booking_id)
    if row is None or row.Booking.account_id != account_id:
        raise DomainError("NOT_FOUND", "未找到该预约")
    _check_in(s, now, row, "online")
    record(s, now, "account", account_id, "booking.check_in", "booking", booking_id, {"channel": "online"},
           row.Booking.hospital_id)


def check_in_by_staff(s: Session, now: datetime, staff: Staff, booking_id: int, ip: str | None = None) -> None:
    check_role(staff.role, (Role.CLERK, Role.HOSPITAL_ADMIN, Role.PLATFORM_ADMIN))
    row = _booking_context(s, booking_id)
    if row is None:
        raise DomainError("NOT_FOUND", "未找到该预约")
    check_hospital(staff.role, staff.hospital_id, row.Booking.hospital_id)
    _check_in(s, now, row, "window")
    record(s, now, "staff", staff.username, "booking.check_in", "booking", booking_id,
           {"channel": "window", "serial": row.Booking.serial_number}, row.Booking.hospital_id, ip)


def find_for_checkin(s: Session, now: datetime, staff: Staff, serial: str | None = None,
                     name: str | None = None, id_last4: str | None = None) -> list:
    """The window finds today's bookings by serial number, or by name + last 4 ID digits."""
    check_role(staff.role, (Role.CLERK, Role.HOSPITAL_ADMIN, Role.PLATFORM_ADMIN))
    q = (select(Booking, Patient.name.label("patient_name"), Person.id_masked, Department.name.label("dept"),
                Doctor.name.label("doctor_name"))
         .join(Patient, Patient.id == Booking.patient_id).join(Person, Person.id == Booking.person_id)
         .join(Department, Department.id == Booking.department_id)
         .outerjoin(Doctor, Doctor.id == Booking.doctor_id))
    if serial:
        q = q.where(Booking.serial_number == serial.strip())
    elif name and id_last4:
        last4 = id_last4.strip().upper()
        if len(last4) != 4:
            raise DomainError("VALIDATION_ERROR", "请输入身份证号后4位")
        q = q.where(Patient.name == name.strip(), Person.id_masked.like(f"%{last4}"),
                    Booking.visit_date == local(now).date())
    else:
        raise DomainError("VALIDATION_ERROR", "请输入预约流水号，或姓名和身份证号后4位")
    if staff.role != Role.PLATFORM_ADMIN:
        q = q.where(Booking.hospital_id == staff.hospital_id)
    return s.execute(q.order_by(Booking.visit_date.desc(), Booking.period_start).limit(20)).all()


# ---------------------------------------------------------------- queue

def _session_for_staff(s: Session, staff: Staff, session_id: int, lock: bool = False) -> ClinicSession:
    check_role(staff.role, (Role.DOCTOR, Role.CLERK, Role.HOSPITAL_ADMIN, Role.PLATFORM_ADMIN))
    q = select(ClinicSession).where(ClinicSession.id == session_id)
    cs = s.scalar(q.with_for_update() if lock else q)
    if cs is None:
        raise DomainError("NOT_FOUND", "未找到该出诊")
    check_hospital(staff.role, staff.hospital_id, cs.hospital_id)
    if staff.role == Role.DOCTOR and cs.doctor_id != staff.doctor_id:
        raise DomainError("NOT_FOUND", "未找到该出诊")
    return cs


def _calling(s: Session, session_id: int) -> QueueEntry | None:
    return s.scalar(select(QueueEntry).where(QueueEntry.session_id == session_id, QueueEntry.state == "calling"))


def _waiting_keys(s: Session, session_id: int, exclude: int | None = None) -> list[tuple[int, int]]:
    q = select(Q.c.booking_id, Q.c.sort_key).where(Q.c.session_id == session_id, Q.c.state == "waiting")
    if exclude is not None:
        q = q.where(Q.c.booking_id != exclude)
    return [tuple(r) for r in s.execute(q.order_by(Q.c.sort_key, Q.c.seq)).all()]


def call_next(s: Session, now: datetime, staff: Staff, session_id: int) -> QueueEntry:
    cs = _session_for_staff(s, staff, session_id, lock=True)
    current = _calling(s, session_id)
    if current is not None:
        raise DomainError("QUEUE_BUSY", f"{current.seq}号正在就诊，请先完成或过号")
    waiting = _waiting_keys(s, session_id)
    if not waiting:
        raise DomainError("QUEUE_EMPTY")
    booking_id = waiting[0][0]
    if not s.execute(update(Q).where(Q.c.booking_id == booking_id, Q.c.state == "waiting").values(
            state="calling", called_at=now, call_count=Q.c.call_count + 1)).rowcount:
        raise DomainError("QUEUE_BUSY", "该患者已被其他诊室呼叫，请刷新")
    record(s, now, "staff", staff.username, "queue.call", "booking", booking_id, {"session_id": session_id},
           cs.hospital_id)
    return s.get(QueueEntry, booking_id, populate_existing=True)


def pass_current(s: Session, now: datetime, staff: Staff, session_id: int) -> QueueEntry:
    """过号: the called patient did not come; they go back behind the next 3 waiting."""
    cs = _session_for_staff(s, staff, session_id, lock=True)
    current = _calling(s, session_id)
    if current is None:
        raise DomainError("NOT_CALLING")
    keys = [k for _, k in _waiting_keys(s, session_id)]
    key = rules.pass_key(keys)
    if key is None:
        _renumber(s, session_id)
        key = rules.pass_key([k for _, k in _waiting_keys(s, session_id)])
    s.execute(update(Q).where(Q.c.booking_id == current.booking_id, Q.c.state == "calling").values(
        state="waiting", sort_key=key, pass_count=Q.c.pass_count + 1, called_at=None))
    record(s, now, "staff", staff.username, "queue.pass", "booking", current.booking_id,
           {"session_id": session_id}, cs.hospital_id)
    return s.get(QueueEntry, current.booking_id, populate_existing=True)


def _renumber(s: Session, session_id: int) -> None:
    for i, (bid, _) in enumerate(_waiting_keys(s, session_id), start=1):
        s.execute(update(Q).where(Q.c.booking_id == bid).values(sort_key=i * rules.KEY_STEP))


def complete_current(s: Session, now: datetime, staff: Staff, session_id: int) -> QueueEntry:
    cs = _session_for_staff(s, staff, session_id, lock=True)
    current = _calling(s, session_id)
    if current is None:
        raise DomainError("NOT_CALLING")
    s.execute(update(Q).where(Q.c.booking_id == current.booking_id, Q.c.state == "calling")
              .values(state="done", completed_at=now))
    set_status_if(s, current.booking_id, ("checked_in",), {"status": "completed"})
    record(s, now, "staff", staff.username, "queue.complete", "booking", current.booking_id,
           {"session_id": session_id}, cs.hospital_id)
    return s.get(QueueEntry, current.booking_id, populate_existing=True)


def recent_durations(s: Session, doctor_id: int | None, now: datetime) -> list[float]:
    if doctor_id is None:
        return []
    rows = s.execute(select(Q.c.called_at, Q.c.completed_at).where(
        Q.c.doctor_id == doctor_id, Q.c.state == "done", Q.c.called_at.is_not(None), Q.c.completed_at <= now
    ).order_by(Q.c.completed_at.desc()).limit(rules.RECENT_VISITS)).all()
    out = []
    for called, done in rows:
        called, done = _aware(called), _aware(done)
        out.append((done - called).total_seconds())
    return [d for d in out if d >= 0]


def _aware(dt: datetime) -> datetime:
    from guahao.clock import UTC

    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


@dataclass
class QueueView:
    booking_id: int
    status: str
    status_label: str
    seq: int
    state: str | None  # waiting | calling | done | None (not checked in)
    now_calling: int | None
    ahead: int | None
    estimated_wait_minutes: int | None
    checkin_opens: datetime
    checkin_closes: datetime
    can_check_in: bool
    waiting_total: int


def queue_view(s: Session, now: datetime, booking_id: int, account_id: int | None = None) -> QueueView:
    row = _booking_context(s, booking_id)
    if row is None or (account_id is not None and row.Booking.account_id != account_id):
        raise DomainError("NOT_FOUND", "未找到该预约")
    b = row.Booking
    w = window_of(row)
    calling = _calling(s, b.session_id)
    mine = s.get(QueueEntry, b.id)
    waiting = _waiting_keys(s, b.session_id)
    ahead = est = None
    if mine is not None and mine.state == "waiting":
        ahead = next(i for i, (bid, _) in enumerate(waiting) if bid == b.id)
        est = rules.estimated_wait_minutes(ahead, calling is not None, recent_durations(s, b.doctor_id, now))
    elif mine is not None and mine.state == "calling":
        ahead, est = 0, 0
    try:
        rules.check_checkin_time(now, b.visit_date, w)
        open_now = b.status == "booked" and row.session_status == "open"
    except DomainError:
        open_now = False
    return QueueView(b.id, b.status, STATUS_LABELS.get(b.status, b.status), b.seq,
                     mine.state if mine else None, calling.seq if calling else None, ahead, est,
                     w.opens, w.closes, open_now, len(waiting))


def session_queue(s: Session, now: datetime, staff: Staff, session_id: int):
    cs = _session_for_staff(s, staff, session_id)
    rows = s.execute(
        select(QueueEntry, Patient.name.label("patient_name"))
        .join(Booking, Booking.id == QueueEntry.booking_id).join(Patient, Patient.id == Booking.patient_id)
        .where(QueueEntry.session_id == session_id)
        .order_by((QueueEntry.state == "done"), QueueEntry.sort_key)
    ).all()
    not_arrived = s.scalar(select(func.count()).select_from(Booking).where(
        Booking.session_id == session_id, Booking.status.in_(("booked", "pending_payment"))))
    est = rules.average_minutes(recent_durations(s, cs.doctor_id, now))
    return cs, rows, not_arrived, est


def staff_sessions_on(s: Session, staff: Staff, day) -> list:
    check_role(staff.role, (Role.DOCTOR, Role.CLERK, Role.HOSPITAL_ADMIN, Role.PLATFORM_ADMIN))
    q = (select(ClinicSession, Doctor.name.label("doctor_name"), Department.name.label("dept"))
         .outerjoin(Doctor, Doctor.id == ClinicSession.doctor_id)
         .join(Department, Department.id == ClinicSession.department_id)
         .where(ClinicSession.visit_date == day))
    if staff.role == Role.DOCTOR:
        q = q.where(ClinicSession.doctor_id == staff.doctor_id)
    elif staff.role != Role.PLATFORM_ADMIN:
        q = q.where(ClinicSession.hospital_id == staff.hospital_id)
    return s.execute(q.order_by(ClinicSession.starts_at, ClinicSession.id).limit(200)).all()
