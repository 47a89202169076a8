from datetime import date, timedelta
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.concurrency import run_in_threadpool

from guahao.errors import DomainError
from guahao.schedule import service
from guahao.release.availability import etag_matches
from guahao.schedule.schemas import AvailabilityOut, DoctorRef, SessionOut, SlotOut

router = APIRouter(prefix="/api/v1", tags=["schedule"])
# Shared caches may keep a page but must ask again (a 304 is cheap); the server's own copy is ≤ 0.5 s old.
CACHE_CONTROL = "public, no-cache"
OptId = Annotated[int | None, Query(ge=1, le=2**31 - 1)]


@router.get("/slots", response_model=AvailabilityOut)
async def slots(request: Request, department_id: OptId = None, doctor_id: OptId = None,
                date: Annotated[date | None, Query()] = None, date_to: Annotated[date | None, Query()] = None):
    """Served from the per-process page cache (guahao/release/availability.py): at most 0.5 s old. A
    cached page is answered on the event loop; only a rendering goes to the thread pool."""
    if date and date_to and not (date <= date_to <= date + timedelta(days=90)):
        raise DomainError("VALIDATION_ERROR", "date_to 应在 date 之后90天内")
    state = request.app.state
    now = state.clock.now()

    def render():
        with state.db.reading() as s:
            out = availability(s, now, department_id, doctor_id, date, date_to)
        state.gate.remember_slots((sl.id, sl.session_id) for sl in out.slots)
        return out.model_dump_json().encode(), frozenset(cs.id for cs in out.sessions)

    key = (department_id, doctor_id, date, date_to)
    page = state.availability.peek(key, now)
    if page is None:
        page = await state.renderings.page(key, lambda: run_in_threadpool(state.availability.get, key, now, render))
        if not state.availability.is_fresh(page, now):  # a rendering begun too long before this request
            page = await run_in_threadpool(state.availability.get, key, now, render)
    headers = {"ETag": page.etag, "Cache-Control": CACHE_CONTROL}
    if etag_matches(request.headers.get("if-none-match"), page.etag):
        return Response(status_code=304, headers=headers)
    return Response(page.body, media_type="application/json", headers=headers)


def availability(s, now, department_id, doctor_id, date, date_to) -> AvailabilityOut:
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
