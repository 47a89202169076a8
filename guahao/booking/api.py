from typing import Annotated

from fastapi import APIRouter, Header, Path, Request
from fastapi.responses import JSONResponse

from guahao import idempotency
from guahao.booking import service
from guahao.booking.repository import account_bookings
from guahao.booking.schemas import AppointmentIn, AppointmentOut, DoctorNamed, Named, RescheduleIn
from guahao.deps import DB, AccountId, Now, ReadSession
from guahao.security.guards import booking_attempt

router = APIRouter(prefix="/api/v1", tags=["appointments"])
Id = Annotated[int, Path(ge=1, le=2**31 - 1)]
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
def book(body: AppointmentIn, request: Request, db: DB, now: Now, account_id: AccountId,
         idempotency_key: IdemKey = None):
    booking_attempt(request, account_id, body.patient_id)  # rate limits (429) before the booking transaction
    def action(s):
        booking_id = service.book(s, now, account_id, body.slot_id, body.patient_id, body.insurance_type)
        return 201, appointment_out(service.get_view(s, account_id, booking_id)).model_dump(mode="json")
    return _idempotent(db, now, account_id, idempotency_key, request, body.model_dump(mode="json"), action)


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
