from functools import lru_cache
from typing import Annotated

from anyio import to_thread
from fastapi import APIRouter, Depends, Header, Path, Request
from fastapi.responses import JSONResponse, Response

from guahao import idempotency
from guahao.booking import service
from guahao.booking.repository import account_bookings
from guahao.booking.schemas import AppointmentIn, AppointmentOut, DoctorNamed, Named, RescheduleIn
from guahao.deps import DB, AccountId, Now, ReadSession, account_id_of, oauth2
from guahao.errors import DomainError
from guahao.release.turns import turns_of
from guahao.security.guards import (booking_attempt, booking_attempt_async, known_person, person_attempt,
                                    person_attempt_async, person_attempt_refused, person_before_booking)

router = APIRouter(prefix="/api/v1", tags=["appointments"])
Id = Annotated[int, Path(ge=1, le=2**31 - 1)]
Token = Annotated[str | None, Depends(oauth2)]
IdemKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=100)]


def appointment_out(row) -> AppointmentOut:
    b = row.Booking
    return AppointmentOut(
        id=b.id, serial_number=b.serial_number, status=b.status,
        status_label=service.STATUS_LABELS.get(b.status, b.status),
        patient=Named(id=b.patient_id, name=row.patient_name),
        hospital=Named(id=b.hospital_id, name=row.hospital_name),
        department=Named(id=b.department_id, name=row.department_name),
        doctor=DoctorNamed(id=b.doctor_id, name=row.doctor_name, title=row.doctor_title),
        visit_date=b.visit_date, period=b.period, period_start=b.period_start, period_end=b.period_end,
        sequence_number=b.seq, number_type=b.number_type, fee=b.fee, insurance_type=b.insurance_type,
        check_in_place=row.location or f"{row.department_name}分诊台",
        cancel_deadline=service.deadline_of(row), created_at=b.created_at,
        rescheduled_from_id=b.rescheduled_from_id,
    )


def _idempotent(db, now, account_id, key, request: Request, body: dict, action):
    """Run `action(s)` -> (status, body) once per Idempotency-Key; replay the stored answer on retries."""
    with db.transaction() as s:
        if key is not None:
            fp = idempotency.fingerprint(request.method, request.url.path, body)
            replay = idempotency.claim(s, now, account_id, key, fp)
            if replay:
                return JSONResponse(replay[1], status_code=replay[0], headers={"Idempotent-Replayed": "true"})
        status, out = action(s)
        if key is not None:
            idempotency.record(s, account_id, key, status, out)
    return JSONResponse(out, status_code=status)


@router.post("/appointments", status_code=201, response_model=AppointmentOut)
async def book(body: AppointmentIn, request: Request, token: Token, idempotency_key: IdemKey = None):
    """Most booking requests never get here: guahao/release/fastlane.py serves every plain JSON booking
    the same way through `attempt` without the framework. Requests with an Idempotency-Key come here."""
    return await attempt(request, account_id_of(request, token), body, idempotency_key)


async def attempt(request: Request, account_id: int, body: AppointmentIn, idempotency_key: str | None = None):
    """At the release instant most requests lose: the gate answers sure losers right here on the event
    loop (no thread, no transaction); everything else goes to the database: on PostgreSQL on the event loop
    too (booking/pg_async.py), otherwise in the thread pool."""
    state = request.app.state
    now = state.clock.now()
    # Rate limits (429) first: a scalper's refused attempts spend their budget too.
    person_counted = await booking_attempt_async(request, account_id, body.patient_id)
    # A retried Idempotency-Key must get its first answer again, which only the database knows: neither the
    # gate nor a number busy at the database (it waits for that booking instead) answers it.
    gate = state.gate if idempotency_key is None else None
    # The gate is asked first, then, while the attempt waits for one of the process's turns at the database
    # (one per connection), again whenever a booking has taught it something: at the release instant the
    # queue empties into refusals instead of into the database.
    turns = turns_of(state)
    refusal = await turns.take(lambda: gate.refusal(body.slot_id, now) if gate is not None else None,
                               body.slot_id, busy=idempotency_key is None)
    if refusal is not None:
        return await _refused(request, refusal, account_id, body.patient_id, person_counted)
    news, booked = False, None
    try:
        if idempotency_key is None and state.pg_bookings is not None and state.pg_bookings.ready():
            response, news, booked = await _book_on_loop(state, now, account_id, request, body, person_counted)
        else:
            response, news = await to_thread.run_sync(_book, state.db, state.gate, now, account_id,
                                                      idempotency_key, request, body, person_counted)
    except DomainError as e:
        news = is_news(e)
        raise
    finally:
        turns.give_back(news, body.slot_id)
    if booked is not None:
        state.gate.publish_booked_soon(*booked)  # after the turn is given back
    return response


async def _refused(request, refusal: DomainError, account_id: int, patient_id: int, person_counted: bool):
    if not person_counted:
        await person_attempt_refused(request, account_id, patient_id)  # may answer 429 instead
    return refusal_response(refusal)


def refusal_response(refusal: DomainError) -> Response:
    """The answer to a refusal the gate gave (also release/direct.py's)."""
    if refusal.details:
        return JSONResponse(refusal.body(), status_code=refusal.status)
    return canned_refusal(refusal.code, refusal.message, refusal.status)


def is_news(refusal: DomainError) -> bool:
    """Whether the database's refusal may refuse many waiting attempts too (their turns look again)."""
    return refusal.code in ("SESSION_FULL", "NOT_RELEASED")


def canned_refusal(code: str, message: str, status: int) -> Response:
    """A refusal without details, its body rendered once (also release/inline.py's answer)."""
    return Response(_refusal_body(code, message), status_code=status, media_type=JSONResponse.media_type)


@lru_cache(maxsize=64)
def _refusal_body(code: str, message: str) -> bytes:
    """The same bytes JSONResponse renders, rendered once per refusal: at the release instant thousands of
    attempts a second get one of a few answers."""
    return JSONResponse({"error": {"code": code, "message": message}}).body


async def _book_on_loop(state, now, account_id: int, request: Request, body: AppointmentIn, person_counted: bool):
    """The booking's transaction on the event loop (PostgreSQL, booking/pg_async.py); as `_book` returns,
    and what the other processes are to be told: this process's gate has learned it already."""
    gate = state.gate
    generation = gate.generation

    async def owed_limit(person_id: int) -> None:
        await person_attempt_async(request, account_id, body.patient_id, person_id)
    person_id = known_person(request, account_id, body.patient_id)
    if person_id is None:
        person_id = await person_before_booking(request, account_id, body.patient_id, person_counted)
        person_counted = person_counted or person_id is not None
    try:
        view = await state.pg_bookings.book(
            now, account_id, body.slot_id, body.patient_id, body.insurance_type,
            on_person=None if person_counted else owed_limit, on_slot=gate.remember_slot, person_id=person_id)
    except DomainError as e:
        gate.learn(state.db, body.slot_id, e, generation)  # the slot's session is known: no query
        raise
    return booked_answer(gate, body.slot_id, view, generation)


def created(view) -> Response:
    """The 201 answer to a booking, serialised by pydantic-core straight to the bytes JSONResponse would
    render from `model_dump` (14 against 37 us: every winner of the release instant pays it)."""
    return Response(appointment_out(view).model_dump_json(), status_code=201, media_type=JSONResponse.media_type)


def booked_answer(gate, slot_id: int, view, generation: int):
    """A booking made on PostgreSQL's path: its answer, whether it filled its session, and what the other
    processes are to be told (`gate.publish_booked_soon`); this process's gate learns it here."""
    response = created(view)
    booked = (slot_id, view.Booking.session_id, view.places_left)
    gate.booked(*booked, generation, publish=False)
    return response, view.places_left == 0, booked


def _book(db, gate, now, account_id, idempotency_key, request, body: AppointmentIn, person_counted: bool):
    """The booking's transaction; returns the answer and whether this booking filled its session."""
    generation = gate.generation
    booked_session = []

    def owed_limit(person_id: int) -> None:
        person_attempt(request, account_id, body.patient_id, person_id)

    def action(s):
        view = service.book_with_view(s, now, account_id, body.slot_id, body.patient_id, body.insurance_type,
                                      on_person=None if person_counted else owed_limit)
        booked_session.append((view.Booking.session_id, view.places_left))
        return view
    try:
        if idempotency_key is None:
            with db.transaction() as s:
                view = action(s)
            # Rendered after the commit: the connection is not held for it.
            response = created(view)
        else:
            response = _idempotent(
                db, now, account_id, idempotency_key, request, body.model_dump(mode="json"),
                lambda s: (201, appointment_out(action(s)).model_dump(mode="json")))
    except DomainError as e:
        gate.learn(db, body.slot_id, e, generation)
        raise
    filled = False
    if booked_session:
        gate.booked(body.slot_id, *booked_session[0], generation)
        filled = booked_session[0][1] == 0
    return response, filled


@router.get("/appointments", response_model=list[AppointmentOut])
def my_appointments(account_id: AccountId, s: ReadSession):
    return [appointment_out(r) for r in account_bookings(s, account_id)]


@router.get("/appointments/{booking_id}", response_model=AppointmentOut)
def appointment(booking_id: Id, account_id: AccountId, s: ReadSession):
    return appointment_out(service.get_view(s, account_id, booking_id))


@router.post("/appointments/{booking_id}/cancel", response_model=AppointmentOut)
def cancel(booking_id: Id, request: Request, account_id: AccountId, db: DB, now: Now):
    from guahao.billing.deps import get_provider
    from guahao.billing.service import cancel_booking  # X2: a prepaid fee is refunded by the tiers

    with db.transaction() as s:
        cancel_booking(s, now, account_id, booking_id, get_provider(request))
        return appointment_out(service.get_view(s, account_id, booking_id))


@router.post("/appointments/{booking_id}/reschedule", status_code=201, response_model=AppointmentOut)
def reschedule(booking_id: Id, body: RescheduleIn, request: Request, db: DB, now: Now,
               account_id: AccountId, idempotency_key: IdemKey = None):
    booking_attempt(request, account_id, None)
    def action(s):
        from guahao.billing.deps import get_provider
        from guahao.billing.service import after_reschedule  # a paid fee moves with the booking

        new_id = service.reschedule(s, now, account_id, booking_id, body.slot_id)
        after_reschedule(s, now, booking_id, new_id, get_provider(request))
        return 201, appointment_out(service.get_view(s, account_id, new_id)).model_dump(mode="json")
    return _idempotent(db, now, account_id, idempotency_key, request, body.model_dump(mode="json"), action)
