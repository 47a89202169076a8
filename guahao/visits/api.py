"""Check-in and queue endpoints: the patient's (我已到达, queue view) and the staff console's."""

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Path, Query

from guahao.accounts.rules import mask_name
from guahao.booking.service import STATUS_LABELS
from guahao.clock import local
from guahao.deps import DB, AccountId, ClientIp, CurrentStaff, Now, ReadSession
from guahao.visits import service
from guahao.visits.schemas import (CheckinCandidate, QueueEntryOut, QueueViewOut, SessionQueueOut,
                                   StaffSessionOut)

router = APIRouter(prefix="/api/v1", tags=["visits"])
Id = Annotated[int, Path(ge=1, le=2**31 - 1)]


def view_out(v: service.QueueView) -> QueueViewOut:
    return QueueViewOut(booking_id=v.booking_id, status=v.status, status_label=v.status_label,
                        sequence_number=v.seq, queue_state=v.state, now_calling=v.now_calling,
                        people_ahead=v.ahead, estimated_wait_minutes=v.estimated_wait_minutes,
                        waiting_total=v.waiting_total, checkin_opens=v.checkin_opens,
                        checkin_closes=v.checkin_closes, can_check_in=v.can_check_in)


@router.post("/appointments/{booking_id}/check-in", response_model=QueueViewOut)
def check_in(booking_id: Id, account_id: AccountId, db: DB, now: Now):
    """我已到达 (V1): online check-in within the check-in hours."""
    with db.transaction() as s:
        service.check_in_online(s, now, account_id, booking_id)
        return view_out(service.queue_view(s, now, booking_id, account_id))


@router.get("/appointments/{booking_id}/queue", response_model=QueueViewOut)
def my_queue(booking_id: Id, account_id: AccountId, s: ReadSession, now: Now):
    return view_out(service.queue_view(s, now, booking_id, account_id))


@router.get("/staff/check-in/search", response_model=list[CheckinCandidate])
def search(staff: CurrentStaff, s: ReadSession, now: Now,
           serial: Annotated[str | None, Query(max_length=20)] = None,
           name: Annotated[str | None, Query(max_length=30)] = None,
           id_last4: Annotated[str | None, Query(max_length=4)] = None):
    rows = service.find_for_checkin(s, now, staff, serial, name, id_last4)
    return [CheckinCandidate(
        booking_id=r.Booking.id, serial_number=r.Booking.serial_number, patient_name=r.patient_name,
        id_masked=r.id_masked, department=r.dept, doctor=r.doctor_name, visit_date=r.Booking.visit_date,
        period=r.Booking.period, period_start=r.Booking.period_start, sequence_number=r.Booking.seq,
        status=r.Booking.status, status_label=STATUS_LABELS.get(r.Booking.status, r.Booking.status))
        for r in rows]


@router.post("/staff/appointments/{booking_id}/check-in", response_model=QueueViewOut)
def staff_check_in(booking_id: Id, staff: CurrentStaff, db: DB, now: Now, ip: ClientIp):
    with db.transaction() as s:
        service.check_in_by_staff(s, now, staff, booking_id, ip)
        return view_out(service.queue_view(s, now, booking_id))


def entry_out(e, name: str) -> QueueEntryOut:
    return QueueEntryOut(booking_id=e.booking_id, sequence_number=e.seq, patient_name=mask_name(name),
                         state=e.state, pass_count=e.pass_count, checked_in_at=e.checked_in_at,
                         called_at=e.called_at, completed_at=e.completed_at)


def session_queue_out(s, now, staff, session_id: int) -> SessionQueueOut:
    cs, rows, not_arrived, avg = service.session_queue(s, now, staff, session_id)
    entries = [(r.QueueEntry, entry_out(r.QueueEntry, r.patient_name)) for r in rows]
    return SessionQueueOut(
        session_id=cs.id, visit_date=cs.visit_date, period=cs.period,
        now_calling=next((o for e, o in entries if e.state == "calling"), None),
        waiting=[o for e, o in entries if e.state == "waiting"],
        done=[o for e, o in entries if e.state == "done"],
        not_checked_in=not_arrived, average_visit_minutes=round(avg, 1))


@router.get("/staff/sessions", response_model=list[StaffSessionOut])
def my_sessions(staff: CurrentStaff, s: ReadSession, now: Now, day: date | None = None):
    rows = service.staff_sessions_on(s, staff, day or local(now).date())
    return [StaffSessionOut(id=r.ClinicSession.id, visit_date=r.ClinicSession.visit_date,
                            period=r.ClinicSession.period, starts_at=r.ClinicSession.starts_at,
                            ends_at=r.ClinicSession.ends_at, doctor=r.doctor_name, department=r.dept,
                            number_type=r.ClinicSession.number_type, booked=r.ClinicSession.booked,
                            capacity=r.ClinicSession.capacity, status=r.ClinicSession.status) for r in rows]


@router.get("/staff/sessions/{session_id}/queue", response_model=SessionQueueOut)
def staff_queue(session_id: Id, staff: CurrentStaff, s: ReadSession, now: Now):
    return session_queue_out(s, now, staff, session_id)


ACTIONS = {"call-next": service.call_next, "pass": service.pass_current, "complete": service.complete_current}


@router.post("/staff/sessions/{session_id}/queue/{action}", response_model=SessionQueueOut)
def queue_action(session_id: Id, action: Annotated[str, Path(pattern="^(call-next|pass|complete)$")],
                 staff: CurrentStaff, db: DB, now: Now):
    """Doctor's actions (V2): call-next, pass (过号, back behind the next 3), complete."""
    with db.transaction() as s:
        ACTIONS[action](s, now, staff, session_id)
        return session_queue_out(s, now, staff, session_id)
