from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.security import OAuth2PasswordRequestForm
from pydantic import BaseModel

from guahao.accounts.schemas import TokenOut
from guahao.deps import DB, CurrentStaff, Now
from guahao.security.guards import login_attempt
from guahao.staff import service

router = APIRouter(prefix="/api/v1/staff", tags=["staff"])


class StaffMe(BaseModel):
    id: int
    username: str
    role: str
    hospital_id: int | None
    doctor_id: int | None


@router.post("/token", response_model=TokenOut)
def token(form: Annotated[OAuth2PasswordRequestForm, Depends()], request: Request, db: DB, now: Now):
    login_attempt(request, form.username, "staff")
    with db.reading() as s:
        return TokenOut(access_token=service.login(s, now, form.username, form.password))


@router.get("/me", response_model=StaffMe)
def me(staff: CurrentStaff):
    return StaffMe(id=staff.id, username=staff.username, role=staff.role, hospital_id=staff.hospital_id,
                   doctor_id=staff.doctor_id)
