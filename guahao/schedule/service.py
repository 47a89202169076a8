"""Availability of sessions and slots, as patients see it."""

from datetime import date, datetime

from sqlalchemy import Row, select
from sqlalchemy.orm import Session

from guahao.booking.models import ACTIVE_STATUSES, Booking
from guahao.catalog.models import Department, Doctor, Hospital
from guahao.errors import DomainError
from guahao.schedule.models import ClinicSession, Slot


def sessions_for(s: Session, department_id: int | None, visit_date: date | None, doctor_id: int | None,
                 date_to: date | None = None):
    if department_id is None and doctor_id is None:
        raise DomainError("VALIDATION_ERROR", "请指定科室或医生")
    q = (select(ClinicSession, Doctor.name.label("doctor_name"), Doctor.title.label("doctor_title"),
                Hospital.same_day_booking)
         .outerjoin(Doctor, Doctor.id == ClinicSession.doctor_id)
         .join(Hospital, Hospital.id == ClinicSession.hospital_id))
    if department_id is not None:
        dept = s.get(Department, department_id)
        if dept is None:
            raise DomainError("NOT_FOUND", "未找到该科室")
        ids = [dept.id]
        if dept.parent_id is None:
            ids += list(s.scalars(select(Department.id).where(Department.parent_id == dept.id)))
        q = q.where(ClinicSession.department_id.in_(ids))
    if doctor_id is not None:
        q = q.where(ClinicSession.doctor_id == doctor_id)
    if visit_date is not None:
        q = q.where(ClinicSession.visit_date.between(visit_date, date_to or visit_date))
    q = q.order_by(ClinicSession.visit_date, ClinicSession.starts_at, ClinicSession.doctor_id,
                   ClinicSession.id)
    return s.execute(q).all()


def slots_with_state(s: Session, session_ids: list[int]) -> dict[int, list[tuple[Row, bool]]]:
    """Each session's slots (rows of id, session_id, seq, starts_at, ends_at) and whether one is held."""
    out: dict[int, list[tuple[Row, bool]]] = {sid: [] for sid in session_ids}
    if not session_ids:
        return out
    held = set(s.scalars(select(Booking.slot_id).where(
        Booking.session_id.in_(session_ids), Booking.status.in_(ACTIVE_STATUSES))))
    # Plain rows, not entities: the availability page reads 300 of them per rendering under the refresh storm.
    for slot in s.execute(select(Slot.id, Slot.session_id, Slot.seq, Slot.starts_at, Slot.ends_at)
                          .where(Slot.session_id.in_(session_ids)).order_by(Slot.session_id, Slot.seq)):
        out[slot.session_id].append((slot, slot.id in held))
    return out


def session_state(session: ClinicSession, now: datetime) -> str:
    if session.status != "open":
        return "stopped"
    if now < session.release_at:
        return "not_released"
    if session.booked >= session.capacity:
        return "full"
    return "available"

