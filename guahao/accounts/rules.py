"""Accounts and patients (RULES A1–A6) as pure functions."""

import re
from dataclasses import dataclass
from datetime import date
from enum import StrEnum

from stdnum.cn import ric
from stdnum.exceptions import ValidationError

from guahao.errors import DomainError

PHONE_RE = re.compile(r"^1[3-9]\d{9}$")
# Han characters, Latin letters (minority and foreign names), the middle dot and spaces between parts.
NAME_RE = re.compile(r"^[\u3400-\u9fff\uf900-\ufaffA-Za-z][\u3400-\u9fff\uf900-\ufaffA-Za-z·• ]*[\u3400-\u9fff\uf900-\ufaffA-Za-z]$")
MAX_PATIENTS = 5


class Relation(StrEnum):
    SELF = "本人"
    CHILD = "子女"
    PARENT = "父母"
    SPOUSE = "配偶"
    OTHER = "其他"


class InsuranceType(StrEnum):
    LOCAL = "local"  # 北京医保
    NON_LOCAL = "non_local"  # 京外医保
    SELF_PAY = "self_pay"  # 自费


INSURANCE_LABELS = {
    InsuranceType.LOCAL: "北京医保",
    InsuranceType.NON_LOCAL: "京外医保",
    InsuranceType.SELF_PAY: "自费",
}


@dataclass(frozen=True)
class IdNumber:
    number: str
    birth_date: date
    sex: str  # "M" | "F"


def check_phone(phone: str) -> str:
    phone = (phone or "").strip()
    if not PHONE_RE.fullmatch(phone):
        raise DomainError("INVALID_PHONE")
    return phone


def check_id_number(value: str, today: date) -> IdNumber:
    """An 18-digit resident ID with a valid GB 11643 checksum and a real, past birth date."""
    number = (value or "").strip().upper()
    if len(number) != 18:
        raise DomainError("INVALID_ID_NUMBER", "身份证号码应为18位")
    try:
        number = ric.validate(number)
        born = ric.get_birth_date(number)
    except ValidationError:
        raise DomainError("INVALID_ID_NUMBER", "身份证号码校验失败，请核对") from None
    if born > today or born.year < 1900:
        raise DomainError("INVALID_ID_NUMBER", "身份证号码中的出生日期不正确")
    sex = "M" if int(number[16]) % 2 == 1 else "F"
    return IdNumber(number, born, sex)


def check_name(name: str) -> str:
    name = " ".join((name or "").split())
    if not 2 <= len(name) <= 30 or not NAME_RE.fullmatch(name):
        raise DomainError("INVALID_NAME", "姓名应为2–30个汉字或字母，可含间隔号“·”")
    return name


def mask_id(number: str) -> str:
    return number[:6] + "*" * 8 + number[-4:]


def mask_phone(phone: str) -> str:
    return phone[:3] + "****" + phone[-4:]


def mask_name(name: str) -> str:
    """For staff lists and public views: 张*明 / 李*."""
    if len(name) <= 2:
        return name[0] + "*"
    return name[0] + "*" * (len(name) - 2) + name[-1]


def check_can_add_patient(current: list[Relation], relation: Relation) -> None:
    if len(current) >= MAX_PATIENTS:
        raise DomainError("PATIENT_LIMIT")
    if relation == Relation.SELF and Relation.SELF in current:
        raise DomainError("SELF_PATIENT_EXISTS")


def age_on(birth: date, on: date) -> int:
    return on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))
