from datetime import date, datetime
from typing import Annotated

from fastapi import APIRouter, Path
from pydantic import BaseModel, ConfigDict, Field

from guahao.attendance import service
from guahao.clock import local
from guahao.deps import DB, ClientIp, CurrentStaff, Now
from guahao.staff.rules import Role, check_role

router = APIRouter(prefix="/api/v1/staff", tags=["staff: no-shows and bans"])
Id = Annotated[int, Path(ge=1, le=2**31 - 1)]


class BanOut(BaseModel):
    id: int
    person_id_number: str  # masked (A6)
    starts_on: date
    ends_on: date  # first day the person may book again
    reason: str
    lifted_at: datetime | None
    lifted_by: str | None


class LiftIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=2, max_length=200)


@router.get("/bans", response_model=list[BanOut])
def bans(staff: CurrentStaff, db: DB, now: Now):
    check_role(staff.role, (Role.PLATFORM_ADMIN,))
    with db.reading() as s:
        return [BanOut(id=b.id, person_id_number=masked, starts_on=b.starts_on, ends_on=b.ends_on,
                       reason=b.reason, lifted_at=b.lifted_at, lifted_by=b.lifted_by)
                for b, masked in service.active_bans(s, local(now).date())]


@router.post("/bans/{ban_id}/lift", response_model=BanOut)
def lift(ban_id: Id, body: LiftIn, staff: CurrentStaff, db: DB, now: Now, ip: ClientIp):
    check_role(staff.role, (Role.PLATFORM_ADMIN,))
    with db.transaction() as s:
        b = service.lift_ban(s, now, ban_id, staff.username, body.reason, ip)
        from guahao.accounts.models import Person

        return BanOut(id=b.id, person_id_number=s.get(Person, b.person_id).id_masked, starts_on=b.starts_on,
                      ends_on=b.ends_on, reason=b.reason, lifted_at=b.lifted_at, lifted_by=b.lifted_by)
