from datetime import date, datetime, time
from typing import Annotated

from fastapi import APIRouter, Path
from pydantic import BaseModel, ConfigDict, Field

from guahao.accounts.rules import InsuranceType, mask_name
from guahao.deps import DB, AccountId, CurrentStaff, Now, ReadSession
from guahao.errors import DomainError
from guahao.schedule.models import ClinicSession
from guahao.staff.rules import Role, check_hospital, check_role
from guahao.waitlist import service

router = APIRouter(prefix="/api/v1", tags=["waitlist"])
Id = Annotated[int, Path(ge=1, le=2**31 - 1)]


class WaitlistIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    session_id: int = Field(ge=1, le=2**31 - 1)
    patient_id: int = Field(ge=1, le=2**31 - 1)
    insurance_type: InsuranceType = InsuranceType.SELF_PAY


class WaitlistOut(BaseModel):
    id: int
    session_id: int
    patient_id: int
    status: str  # waiting | filled | left | closed
    place: int | None  # 1 = next in line; null once no longer waiting
    visit_date: date
    period: str
    starts_at: time
    created_at: datetime
    booking_id: int | None


def _out(s, e) -> WaitlistOut:
    cs = s.get(ClinicSession, e.session_id)
    return WaitlistOut(id=e.id, session_id=e.session_id, patient_id=e.patient_id, status=e.status,
                       place=service.place(s, e), visit_date=cs.visit_date, period=cs.period,
                       starts_at=cs.starts_at, created_at=e.created_at, booking_id=e.booking_id)


@router.post("/waitlist", status_code=201, response_model=WaitlistOut)
def join(body: WaitlistIn, account_id: AccountId, db: DB, now: Now):
    with db.transaction() as s:
        e = service.join(s, now, account_id, body.session_id, body.patient_id, body.insurance_type)
        return _out(s, e)


@router.get("/waitlist", response_model=list[WaitlistOut])
def mine(account_id: AccountId, s: ReadSession):
    return [_out(s, e) for e in service.account_entries(s, account_id)]


@router.get("/waitlist/{entry_id}", response_model=WaitlistOut)
def one(entry_id: Id, account_id: AccountId, s: ReadSession):
    return _out(s, service.own_entry(s, account_id, entry_id))


@router.delete("/waitlist/{entry_id}", response_model=WaitlistOut)
def leave(entry_id: Id, account_id: AccountId, db: DB, now: Now):
    with db.transaction() as s:
        return _out(s, service.leave(s, now, account_id, entry_id))


class StaffWaitlistOut(BaseModel):
    id: int
    status: str
    place: int | None
    patient: str  # masked name (A6)
    phone: str  # masked
    created_at: datetime
    booking_id: int | None
    last_skip_reason: str | None


@router.get("/staff/sessions/{session_id}/waitlist", response_model=list[StaffWaitlistOut],
            tags=["staff: schedules"])
def staff_queue(session_id: Id, staff: CurrentStaff, s: ReadSession):
    cs = s.get(ClinicSession, session_id)
    if cs is None:
        raise DomainError("NOT_FOUND", "未找到该出诊")
    check_role(staff.role, (Role.PLATFORM_ADMIN, Role.HOSPITAL_ADMIN, Role.CLERK))
    check_hospital(staff.role, staff.hospital_id, cs.hospital_id)
    out, place = [], 0
    for e, name, phone in service.session_queue(s, session_id):
        place += e.status == "waiting"
        out.append(StaffWaitlistOut(id=e.id, status=e.status, place=place if e.status == "waiting" else None,
                                    patient=mask_name(name), phone=phone, created_at=e.created_at,
                                    booking_id=e.booking_id, last_skip_reason=e.last_skip_reason))
    return out
