from datetime import date, timedelta
from typing import Annotated

from fastapi import APIRouter, Query

from guahao.deps import Now, ReadSession
from guahao.errors import DomainError
from guahao.schedule import service
from guahao.schedule.schemas import AvailabilityOut, DoctorRef, SessionOut, SlotOut

router = APIRouter(prefix="/api/v1", tags=["schedule"])
OptId = Annotated[int | None, Query(ge=1, le=2**31 - 1)]


@router.get("/slots", response_model=AvailabilityOut)
def slots(s: ReadSession, now: Now, department_id: OptId = None, doctor_id: OptId = None,
          date: Annotated[date | None, Query()] = None, date_to: Annotated[date | None, Query()] = None):
    if date and date_to and not (date <= date_to <= date + timedelta(days=90)):
        raise DomainError("VALIDATION_ERROR", "date_to 应在 date 之后90天内")
    rows = service.sessions_for(s, department_id, date, doctor_id, date_to)
    slot_map = service.slots_with_state(s, [r.ClinicSession.id for r in rows])
    sessions, slots = [], []
    for r in rows:
        cs = r.ClinicSession
        doctor = DoctorRef(id=cs.doctor_id, name=r.doctor_name, title=r.doctor_title) if cs.doctor_id else None
        state = service.session_state(cs, now)
        sessions.append(SessionOut(
            id=cs.id, doctor=doctor, department_id=cs.department_id, visit_date=cs.visit_date,
            period=cs.period, starts_at=cs.starts_at, ends_at=cs.ends_at, number_type=cs.number_type,
            fee=cs.fee, capacity=cs.capacity, remaining=max(0, cs.capacity - cs.booked), status=state,
            release_at=cs.release_at, online_bookable=cs.online_bookable))
        for slot, held in slot_map[cs.id]:
            status = "taken" if held else ("available" if state in ("available", "full") else state)
            slots.append(SlotOut(
                id=slot.id, session_id=cs.id, doctor=doctor, number_type=cs.number_type, fee=cs.fee,
                visit_date=cs.visit_date, period=cs.period, period_start=slot.starts_at,
                period_end=slot.ends_at, sequence_number=slot.seq, status=status))
    return AvailabilityOut(sessions=sessions, slots=slots)
