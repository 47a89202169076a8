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
# 出生医学证明 numbers since 2014: one letter and nine digits (earlier certificates are reissued on request).
BIRTH_CERT_RE = re.compile(r"^[A-Z]\d{9}$")
# The resident ID card is compulsory from 16 (居民身份证法 §2); younger children may have no number yet.
CHILD_WITHOUT_ID_BELOW_AGE = 16
ADULT_AGE = 18


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


ID_KIND_RESIDENT = "RIC"  # 居民身份证
ID_KIND_BIRTH_CERT = "BC"  # 出生医学证明


@dataclass(frozen=True)
class IdNumber:
    number: str
    birth_date: date
    sex: str  # "M" | "F"


@dataclass(frozen=True)
class BirthCertificate:
    """A child without a resident ID number (A2): identified by the birth certificate's number."""
    number: str
    birth_date: date
    sex: str  # "M" | "F"
    guardian: IdNumber


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


def check_birth_certificate(number: str, birth_date: date | None, sex: str | None, guardian_id: str,
                            relation: "Relation", today: date) -> BirthCertificate:
    """A2's child without an ID number: the birth certificate's number, the birth date and sex written on
    it (an ID number would carry them), and an adult guardian's checked ID number."""
    if relation != Relation.CHILD:
        raise DomainError("VALIDATION_ERROR", "只有子女（未办理身份证的儿童）可凭出生医学证明添加")
    number = (number or "").strip().upper()
    if not BIRTH_CERT_RE.fullmatch(number):
        raise DomainError("INVALID_BIRTH_CERTIFICATE")
    if birth_date is None or birth_date > today:
        raise DomainError("VALIDATION_ERROR", "请填写出生医学证明上的出生日期")
    if age_on(birth_date, today) >= CHILD_WITHOUT_ID_BELOW_AGE:
        raise DomainError("VALIDATION_ERROR", "年满16周岁应使用居民身份证号码添加")
    if sex not in ("M", "F"):
        raise DomainError("VALIDATION_ERROR", "请选择儿童的性别")
    try:
        guardian = check_id_number(guardian_id, today)
    except DomainError:
        raise DomainError("INVALID_ID_NUMBER", "监护人身份证号码不正确") from None
    if age_on(guardian.birth_date, today) < ADULT_AGE:
        raise DomainError("VALIDATION_ERROR", "监护人应年满18周岁")
    return BirthCertificate(number, birth_date, sex, guardian)


def check_id_for_certificate(id_number: str, birth_date: date, sex: str, today: date) -> IdNumber:
    """The ID number a child added by birth certificate has since been given: it must carry the birth date
    and sex written on the certificate."""
    info = check_id_number(id_number, today)
    if (info.birth_date, info.sex) != (birth_date, sex):
        raise DomainError("VALIDATION_ERROR", "身份证号码中的出生日期或性别与出生医学证明不符，请核对")
    return info


def person_key(kind: str, number: str) -> str:
    """What identifies a person (A3): the ID number itself, or a birth certificate's number in a namespace
    of its own (the two formats cannot collide, the prefix keeps it so)."""
    return number if kind == ID_KIND_RESIDENT else f"{kind}:{number}"


def check_name(name: str) -> str:
    name = " ".join((name or "").split())
    if not 2 <= len(name) <= 30 or not NAME_RE.fullmatch(name):
        raise DomainError("INVALID_NAME", "姓名应为2–30个汉字或字母，可含间隔号“·”")
    return name


def mask_id(number: str) -> str:
    return number[:6] + "*" * 8 + number[-4:]


def mask_birth_certificate(number: str) -> str:
    return number[:3] + "****" + number[-3:]


def mask_person_id(kind: str, number: str) -> str:
    return mask_birth_certificate(number) if kind == ID_KIND_BIRTH_CERT else mask_id(number)


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
