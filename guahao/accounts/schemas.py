from datetime import date
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from guahao.accounts.rules import InsuranceType, Relation


class AccountIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    phone: str = Field(max_length=20, examples=["13800138000"])
    password: str = Field(min_length=1, max_length=64)
    name: str = Field(max_length=60, examples=["张三"])
    id_number: str = Field(max_length=30, examples=["11010519491231002X"])
    # A1: required when GUAHAO_REQUIRE_SMS_CODE is true (get one from POST /api/v1/sms-codes).
    sms_code: str | None = Field(default=None, max_length=6)


class AccountOut(BaseModel):
    id: int
    phone: str  # masked
    self_patient_id: int


class TokenOut(BaseModel):
    access_token: str
    token_type: str = "bearer"


class BirthCertificateIn(BaseModel):
    """A child without a resident ID number (A2, relation 子女): the birth certificate (出生医学证明)."""
    model_config = ConfigDict(extra="forbid")
    number: str = Field(max_length=20, examples=["O110123456"])
    birth_date: date
    sex: Literal["M", "F"]
    guardian_id_number: str = Field(max_length=30, examples=["11010519491231002X"])


class PatientIn(BaseModel):
    """Either `id_number` or, for a child who has none yet, `birth_certificate`."""
    model_config = ConfigDict(extra="forbid")
    name: str = Field(max_length=60)
    id_number: str | None = Field(default=None, max_length=30)
    phone: str = Field(max_length=20)
    relation: Relation
    insurance_type: InsuranceType = InsuranceType.SELF_PAY
    birth_certificate: BirthCertificateIn | None = None


class IdNumberIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id_number: str = Field(max_length=30)


class VisitCardIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    hospital_id: int = Field(ge=1, le=2**31 - 1)
    card_number: str = Field(max_length=40)


class VisitCardOut(BaseModel):
    hospital_id: int
    card_number: str


class PatientOut(BaseModel):
    id: int
    name: str
    id_number: str  # masked (A6); a birth certificate's number when id_type is "birth_certificate"
    id_type: Literal["resident_id", "birth_certificate"] = "resident_id"
    guardian_id_number: str | None = None  # masked (A6)
    phone: str  # masked (A6)
    relation: Relation
    insurance_type: InsuranceType
    birth_date: date
    sex: str
    visit_cards: list[VisitCardOut] = []
