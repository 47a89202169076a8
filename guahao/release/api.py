from datetime import time
from typing import Annotated

from fastapi import APIRouter, Path
from pydantic import BaseModel, ConfigDict, Field

from guahao.catalog.models import Hospital
from guahao.deps import DB, ClientIp, CurrentStaff, Now
from guahao.errors import DomainError
from guahao.release import service
from guahao.staff.service import administered_hospital

router = APIRouter(prefix="/api/v1/staff", tags=["staff: release settings"])
Id = Annotated[int, Path(ge=1, le=2**31 - 1)]


class ReleaseSettingsOut(BaseModel):
    hospital_id: int
    release_time: time
    window_days: int
    same_day_booking: bool
    cancel_deadline_time: time
    cancel_minutes_before: int | None
    checkin_lead_minutes: int
    reminder_time: time
    platform_defaults: dict
    sessions_moved: int | None = None


class ReleaseSettingsIn(BaseModel):
    """Only the fields given change. cancel_minutes_before: null = deadline by time of day the day before."""

    model_config = ConfigDict(extra="forbid")
    release_time: time | None = None
    window_days: int | None = Field(default=None, ge=1, le=90)
    same_day_booking: bool | None = None
    cancel_deadline_time: time | None = None
    cancel_minutes_before: int | None = Field(default=None, ge=0, le=10080)
    checkin_lead_minutes: int | None = Field(default=None, ge=0, le=240)
    reminder_time: time | None = None


def _out(h: Hospital, moved: int | None = None) -> ReleaseSettingsOut:
    v = service.of(h)
    return ReleaseSettingsOut(hospital_id=h.id, platform_defaults=service.PLATFORM_DEFAULTS.__dict__,
                              sessions_moved=moved, **v.__dict__)


_hospital = administered_hospital


@router.get("/hospitals/{hospital_id}/release-settings", response_model=ReleaseSettingsOut)
def get_settings(hospital_id: Id, staff: CurrentStaff, db: DB):
    with db.reading() as s:
        return _out(_hospital(s, staff, hospital_id))


@router.put("/hospitals/{hospital_id}/release-settings", response_model=ReleaseSettingsOut)
def put_settings(hospital_id: Id, body: ReleaseSettingsIn, staff: CurrentStaff, db: DB, now: Now, ip: ClientIp):
    changes = body.model_dump(exclude_unset=True)
    for k in ("release_time", "window_days", "same_day_booking", "cancel_deadline_time",
              "checkin_lead_minutes", "reminder_time"):
        if k in changes and changes[k] is None:
            raise DomainError("VALIDATION_ERROR", f"{k} 不能为空")
    with db.transaction() as s:
        h = _hospital(s, staff, hospital_id)
        _, moved = service.update_settings(s, now, h, changes, staff.username, ip)
        return _out(h, moved)
