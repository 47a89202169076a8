from datetime import date, datetime, time

from pydantic import BaseModel, ConfigDict, Field

from guahao.accounts.rules import InsuranceType


class AppointmentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    slot_id: int = Field(ge=1, le=2**31 - 1)
    patient_id: int = Field(ge=1, le=2**31 - 1)
    insurance_type: InsuranceType = InsuranceType.SELF_PAY


class RescheduleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    slot_id: int = Field(ge=1, le=2**31 - 1)


class Named(BaseModel):
    id: int | None
    name: str | None


class DoctorNamed(Named):
    title: str | None


class AppointmentOut(BaseModel):
    id: int
    serial_number: str
    status: str
    status_label: str
    patient: Named
    hospital: Named
    department: Named
    doctor: DoctorNamed
    visit_date: date
    period: str
    period_start: time
    period_end: time
    sequence_number: int
    number_type: str
    fee: int  # fen
    insurance_type: InsuranceType
    check_in_place: str
    cancel_deadline: datetime
    created_at: datetime
    rescheduled_from_id: int | None
