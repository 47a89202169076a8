from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from guahao.accounts import repository as accounts
from guahao.accounts.security import hash_password
from guahao.accounts.service import check_password
from guahao.deps import DB, ClientIp, CurrentStaff, Now
from guahao.errors import DomainError
from guahao.notifications import codes, service
from guahao.notifications.rules import shown_body
from guahao.security.guards import sms_attempt
from guahao.staff.rules import Role, check_hospital, check_role

router = APIRouter(prefix="/api/v1", tags=["notifications"])


class CodeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    phone: str = Field(max_length=20)
    purpose: Literal["signup", "reset"]


class CodeOut(BaseModel):
    expires_in: int  # seconds
    resend_after: int  # seconds


class ResetIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    phone: str = Field(max_length=20)
    sms_code: str = Field(max_length=6)
    new_password: str = Field(min_length=1, max_length=64)


class OutboxOut(BaseModel):
    id: int
    kind: str
    phone: str  # masked (A6)
    body: str
    status: str
    attempts: int
    created_at: datetime
    sent_at: datetime | None
    booking_id: int | None
    hospital_id: int | None


@router.post("/sms-codes", status_code=202, response_model=CodeOut)
def send_code(body: CodeIn, request: Request, db: DB, now: Now):
    # Counted before any work (A1): per phone and per client address, shared by every server process.
    sms_attempt(request, body.phone.strip())
    with db.transaction() as s:
        return CodeOut(**codes.request_code(s, now, body.phone, body.purpose))


@router.post("/password-resets", status_code=204)
def reset_password(body: ResetIn, db: DB, now: Now, ip: ClientIp):
    check_password(body.new_password)
    codes.confirm_code(db, now, body.phone, "reset", body.sms_code)
    with db.transaction() as s:
        account = accounts.account_by_phone(s, body.phone.strip())
        if account is None:  # a code was never sent to an unknown phone, so this is not reached in practice
            raise DomainError("SMS_CODE_INVALID")
        account.password_hash = hash_password(body.new_password)
        from guahao.audit import service as audit

        audit.record(s, now, "account", account.id, "account.password_reset", "account", account.id,
                     {"phone": account.phone_masked}, ip=ip)
    from fastapi import Response

    return Response(status_code=204)


@router.get("/staff/outbox", response_model=list[OutboxOut], tags=["staff: notifications"])
def outbox(staff: CurrentStaff, db: DB, kind: Annotated[str | None, Query(max_length=30)] = None,
           hospital_id: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
           limit: Annotated[int, Query(ge=1, le=500)] = 100, offset: Annotated[int, Query(ge=0, le=10**6)] = 0):
    check_role(staff.role, (Role.PLATFORM_ADMIN, Role.HOSPITAL_ADMIN, Role.CLERK))
    if staff.role != Role.PLATFORM_ADMIN:
        hospital_id = hospital_id or staff.hospital_id
        check_hospital(staff.role, staff.hospital_id, hospital_id)
    with db.reading() as s:
        rows = service.outbox(s, hospital_id, kind, limit, offset)
    return [OutboxOut(id=n.id, kind=n.kind, phone=n.phone_masked, status=n.status, attempts=n.attempts,
                      body=shown_body(n.kind, n.body),
                      created_at=n.created_at, sent_at=n.sent_at, booking_id=n.booking_id,
                      hospital_id=n.hospital_id) for n in rows]
