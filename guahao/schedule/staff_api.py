"""Staff API for schedules: weekly templates, generating sessions, the calendar and its overrides, 停诊."""

from datetime import date, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from guahao.audit import service as audit
from guahao.catalog.models import Doctor
from guahao.deps import DB, ClientIp, CurrentStaff, Now
from guahao.errors import DomainError
from guahao.schedule import planning
from guahao.schedule.models import ClinicSession, ScheduleTemplate
from guahao.staff.rules import Role, check_hospital, check_role
from guahao.staff.service import ADMINS, administered_hospital

router = APIRouter(prefix="/api/v1/staff", tags=["staff: schedules"])
Id = Annotated[int, Path(ge=1, le=2**31 - 1)]


class TemplateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    weekday: int = Field(ge=0, le=6, description="0 = 周一 … 6 = 周日")
    period: Literal["AM", "PM"]
    number_type: Literal["普通号", "专家号", "特需号"]
    capacity: int = Field(ge=1, le=500)
    fee: int = Field(ge=0, le=10_000_000, description="fen")
    online_bookable: bool = True


class TemplateOut(TemplateIn):
    model_config = ConfigDict(extra="ignore", from_attributes=True)
    id: int
    doctor_id: int
    department_id: int


class GenerateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    start: date | None = None
    end: date | None = None
    doctor_id: int | None = Field(default=None, ge=1, le=2**31 - 1)


class GenerateOut(BaseModel):
    sessions: int
    slots: int
    skipped_existing: int
    holidays: list[date]
    makeup_days: list[date]
    warnings: list[str]


class DayOut(BaseModel):
    day: date
    kind: str
    source: str
    name: str | None
    pattern_weekday: int | None


class CalendarOut(BaseModel):
    days: list[DayOut]
    warnings: list[str]


class OverrideIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    is_workday: bool
    as_weekday: int | None = Field(default=None, ge=0, le=6)
    note: str = Field(default="", max_length=100)
    hospital_id: int | None = Field(default=None, ge=1, le=2**31 - 1,
                                    description="null: platform-wide (platform admin only)")


class StopIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=2, max_length=80, examples=["医生临时外出会诊"])


class StopOut(BaseModel):
    session_id: int
    status: str
    stopped_bookings: int


_admin_of = administered_hospital


def _doctor(s, staff, doctor_id: int) -> Doctor:
    doc = s.get(Doctor, doctor_id)
    if doc is None:
        raise DomainError("NOT_FOUND", "未找到该医生")
    _admin_of(s, staff, doc.hospital_id)
    return doc


@router.get("/hospitals/{hospital_id}/templates", response_model=list[TemplateOut])
def list_templates(hospital_id: Id, staff: CurrentStaff, db: DB,
                   doctor_id: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None):
    with db.reading() as s:
        _admin_of(s, staff, hospital_id)
        return [TemplateOut.model_validate(t) for t in planning.templates_of(s, hospital_id, doctor_id)]


@router.put("/doctors/{doctor_id}/templates", response_model=TemplateOut)
def put_template(doctor_id: Id, body: TemplateIn, staff: CurrentStaff, db: DB, now: Now, ip: ClientIp):
    with db.transaction() as s:
        doc = _doctor(s, staff, doctor_id)
        t = planning.set_template(s, now, doc, **body.model_dump())
        audit.record(s, now, "staff", staff.username, "template.set", "schedule_template", t.id,
                     body.model_dump(), hospital_id=doc.hospital_id, ip=ip)
        return TemplateOut.model_validate(t)


@router.delete("/templates/{template_id}", status_code=204)
def delete_template(template_id: Id, staff: CurrentStaff, db: DB, now: Now, ip: ClientIp):
    with db.transaction() as s:
        t = s.get(ScheduleTemplate, template_id)
        if t is None or not t.active:
            raise DomainError("NOT_FOUND", "未找到该排班模板")
        _admin_of(s, staff, t.hospital_id)
        planning.remove_template(s, t)
        audit.record(s, now, "staff", staff.username, "template.remove", "schedule_template", t.id,
                     hospital_id=t.hospital_id, ip=ip)
    return Response(status_code=204)


@router.post("/hospitals/{hospital_id}/generate-sessions", response_model=GenerateOut)
def generate(hospital_id: Id, body: GenerateIn, staff: CurrentStaff, db: DB, now: Now, ip: ClientIp):
    with db.transaction() as s:
        h = _admin_of(s, staff, hospital_id)
        r = planning.generate(s, now, h, body.start, body.end, body.doctor_id)
        audit.record(s, now, "staff", staff.username, "sessions.generate", "hospital", h.id,
                     {"sessions": r.sessions, "start": str(body.start), "end": str(body.end)},
                     hospital_id=h.id, ip=ip)
        return GenerateOut(**r.__dict__)


@router.get("/calendar", response_model=CalendarOut)
def get_calendar(staff: CurrentStaff, db: DB, start: Annotated[date, Query()],
                 end: Annotated[date | None, Query()] = None,
                 hospital_id: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None):
    end = end or start + timedelta(days=30)
    if not start <= end <= start + timedelta(days=366):
        raise DomainError("VALIDATION_ERROR", "日期范围应在366天内")
    if hospital_id is None and staff.role != Role.PLATFORM_ADMIN:
        hospital_id = staff.hospital_id
    if hospital_id is not None:
        check_hospital(staff.role, staff.hospital_id, hospital_id)
    with db.reading() as s:
        days = planning.calendar_days(s, start, end, hospital_id)
    warnings = list(dict.fromkeys(d.warning for d in days if d.warning))
    return CalendarOut(days=[DayOut(day=d.day, kind=d.kind, source=d.source, name=d.name,
                                    pattern_weekday=d.pattern_weekday) for d in days], warnings=warnings)


def _override_scope(staff, hospital_id: int | None) -> None:
    if hospital_id is None:
        check_role(staff.role, (Role.PLATFORM_ADMIN,))
    else:
        check_role(staff.role, ADMINS)
        check_hospital(staff.role, staff.hospital_id, hospital_id)


@router.put("/calendar/{day}", response_model=DayOut)
def put_override(day: date, body: OverrideIn, staff: CurrentStaff, db: DB, now: Now, ip: ClientIp):
    _override_scope(staff, body.hospital_id)
    with db.transaction() as s:
        planning.set_override(s, now, staff.username, day, body.is_workday, body.hospital_id, body.as_weekday,
                              body.note)
        audit.record(s, now, "staff", staff.username, "calendar.override", "calendar_day", day.isoformat(),
                     body.model_dump(), hospital_id=body.hospital_id, ip=ip)
        d = planning.calendar_days(s, day, day, body.hospital_id)[0]
    return DayOut(day=d.day, kind=d.kind, source=d.source, name=d.name, pattern_weekday=d.pattern_weekday)


@router.delete("/calendar/{day}", status_code=204)
def delete_override(day: date, staff: CurrentStaff, db: DB, now: Now, ip: ClientIp,
                    hospital_id: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None):
    _override_scope(staff, hospital_id)
    with db.transaction() as s:
        if not planning.remove_override(s, day, hospital_id):
            raise DomainError("NOT_FOUND", "该日期没有覆盖设置")
        audit.record(s, now, "staff", staff.username, "calendar.override_remove", "calendar_day",
                     day.isoformat(), hospital_id=hospital_id, ip=ip)
    return Response(status_code=204)


@router.post("/sessions/{session_id}/stop", response_model=StopOut)
def stop(session_id: Id, body: StopIn, staff: CurrentStaff, db: DB, now: Now, ip: ClientIp):
    with db.transaction() as s:
        cs = s.get(ClinicSession, session_id, with_for_update=True)
        if cs is None:
            raise DomainError("NOT_FOUND", "未找到该出诊")
        _admin_of(s, staff, cs.hospital_id)
        ids = planning.stop_session(s, now, cs, staff.username, body.reason, ip)
        return StopOut(session_id=cs.id, status=cs.status, stopped_bookings=len(ids))
