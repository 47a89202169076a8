from datetime import time

from pydantic import BaseModel


class DepartmentRef(BaseModel):
    id: int
    name: str


class HospitalOut(BaseModel):
    id: int
    name: str
    grade: str
    district: str
    address: str
    phone: str
    is_demo: bool
    flagship_departments: list[DepartmentRef]


class HospitalDetail(HospitalOut):
    intro: str
    release_time: time
    window_days: int
    same_day_booking: bool
    cancel_deadline_time: time
    cancel_minutes_before: int | None
    checkin_lead_minutes: int
    requires_visit_card: bool


class DepartmentOut(BaseModel):
    id: int
    name: str
    parent_id: int | None
    is_flagship: bool
    location: str
    intro: str
    children: list["DepartmentOut"] = []


class DoctorOut(BaseModel):
    id: int
    name: str
    title: str
    department_id: int
    specialties: str
    years_in_practice: int
    is_demo: bool
