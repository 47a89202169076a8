from datetime import date, datetime, time

from pydantic import BaseModel


class QueueViewOut(BaseModel):
    booking_id: int
    status: str
    status_label: str
    sequence_number: int
    queue_state: str | None  # waiting | calling | done; null before check-in
    now_calling: int | None
    people_ahead: int | None
    estimated_wait_minutes: int | None
    waiting_total: int
    checkin_opens: datetime
    checkin_closes: datetime
    can_check_in: bool


class CheckinCandidate(BaseModel):
    booking_id: int
    serial_number: str
    patient_name: str
    id_masked: str
    department: str
    doctor: str | None
    visit_date: date
    period: str
    period_start: time
    sequence_number: int
    status: str
    status_label: str


class QueueEntryOut(BaseModel):
    booking_id: int
    sequence_number: int
    patient_name: str  # masked
    state: str
    pass_count: int
    checked_in_at: datetime
    called_at: datetime | None
    completed_at: datetime | None


class SessionQueueOut(BaseModel):
    session_id: int
    visit_date: date
    period: str
    now_calling: QueueEntryOut | None
    waiting: list[QueueEntryOut]
    done: list[QueueEntryOut]
    not_checked_in: int
    average_visit_minutes: float


class StaffSessionOut(BaseModel):
    id: int
    visit_date: date
    period: str
    starts_at: time
    ends_at: time
    doctor: str | None
    department: str
    number_type: str
    booked: int
    capacity: int
    status: str
