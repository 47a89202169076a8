from datetime import date, datetime, time

from pydantic import BaseModel


class DoctorRef(BaseModel):
    id: int
    name: str
    title: str


class SlotOut(BaseModel):
    id: int
    session_id: int
    doctor: DoctorRef | None
    number_type: str
    fee: int  # fen
    visit_date: date
    period: str
    period_start: time
    period_end: time
    sequence_number: int
    status: str  # available | taken | not_released | stopped


class SessionOut(BaseModel):
    id: int
    doctor: DoctorRef | None
    department_id: int
    visit_date: date
    period: str
    starts_at: time
    ends_at: time
    number_type: str
    fee: int
    capacity: int
    remaining: int
    status: str  # available | full | not_released | stopped
    release_at: datetime
    online_bookable: bool


class AvailabilityOut(BaseModel):
    sessions: list[SessionOut]
    slots: list[SlotOut]
