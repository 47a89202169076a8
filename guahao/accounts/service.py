"""Sign-up, login and the patients of an account. Never commits."""

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from guahao.accounts import repository as repo
from guahao.accounts import rules
from guahao.accounts.models import Account, Patient, Person, VisitCard
from guahao.accounts.security import hash_password, issue_token, verify_password
from guahao.booking.models import Booking
from guahao.catalog.models import Hospital
from guahao.clock import local
from guahao.errors import DomainError
from guahao.privacy import lookup_hash

# A fixed hash to verify against when the phone is unknown, so timing does not reveal registered phones.
_DUMMY_HASH: list[str] = []


def _identity(kind: str, number: str) -> dict:
    """A person's identity columns: what they are known by (A3), stored encrypted, hashed and masked."""
    return dict(id_kind=kind, id_hash=lookup_hash(rules.person_key(kind, number)), id_number=number,
                id_masked=rules.mask_person_id(kind, number))


def _get_or_create_person(s: Session, info: rules.IdNumber | rules.BirthCertificate, now: datetime) -> Person:
    kind = rules.ID_KIND_BIRTH_CERT if isinstance(info, rules.BirthCertificate) else rules.ID_KIND_RESIDENT
    key = rules.person_key(kind, info.number)
    person = repo.person_by_id_number(s, key)
    if person:
        return person
    person = Person(**_identity(kind, info.number), birth_date=info.birth_date, sex=info.sex, created_at=now)
    try:
        with s.begin_nested():
            s.add(person)
            s.flush()
    except IntegrityError:
        # Added at the same moment by another account: it is the same person (A3).
        person = repo.person_by_id_number(s, key)
    return person


def check_password(password: str) -> str:
    if not isinstance(password, str) or not 8 <= len(password) <= 64:
        raise DomainError("VALIDATION_ERROR", "密码长度应为8–64位")
    if password.isdigit() or password.isalpha():
        raise DomainError("VALIDATION_ERROR", "密码须同时包含字母和数字")
    return password


def register(s: Session, now: datetime, phone: str, password: str, name: str, id_number: str) -> Account:
    phone = rules.check_phone(phone)
    check_password(password)
    name = rules.check_name(name)
    info = rules.check_id_number(id_number, local(now).date())
    if repo.account_by_phone(s, phone):
        raise DomainError("PHONE_TAKEN")
    account = Account(phone_hash=lookup_hash(phone), phone=phone, phone_masked=rules.mask_phone(phone),
                      password_hash=hash_password(password), created_at=now)
    try:
        with s.begin_nested():
            s.add(account)
            s.flush()
    except IntegrityError:
        raise DomainError("PHONE_TAKEN") from None
    person = _get_or_create_person(s, info, now)
    s.add(Patient(account_id=account.id, person_id=person.id, name=name, phone=phone,
                  phone_masked=rules.mask_phone(phone), relation=rules.Relation.SELF,
                  insurance_type=rules.InsuranceType.SELF_PAY, created_at=now))
    s.flush()
    return account


def login(s: Session, now: datetime, phone: str, password: str) -> str:
    account = repo.account_by_phone(s, (phone or "").strip())
    if account is None or not account.is_active:
        if not _DUMMY_HASH:
            _DUMMY_HASH.append(hash_password("dummy-password-1"))
        verify_password(password or "", _DUMMY_HASH[0])
        raise DomainError("INVALID_CREDENTIALS")
    if not verify_password(password or "", account.password_hash):
        raise DomainError("INVALID_CREDENTIALS")
    return issue_token(str(account.id), "account", now)


@dataclass(frozen=True)
class BirthCertificateIn:
    """What a child without an ID number is added with (A2), as entered."""
    number: str
    birth_date: date | None
    sex: str | None
    guardian_id_number: str


def add_patient(
    s: Session, now: datetime, account_id: int, name: str, id_number: str | None, phone: str,
    relation: str, insurance_type: str = rules.InsuranceType.SELF_PAY,
    birth_certificate: BirthCertificateIn | None = None,
) -> Patient:
    name = rules.check_name(name)
    phone = rules.check_phone(phone)
    relation = rules.Relation(relation)
    today = local(now).date()
    if birth_certificate is None:
        info = rules.check_id_number(id_number, today)
    elif (id_number or "").strip():
        raise DomainError("VALIDATION_ERROR", "身份证号码与出生医学证明只填其一")
    else:
        bc = birth_certificate
        info = rules.check_birth_certificate(bc.number, bc.birth_date, bc.sex, bc.guardian_id_number,
                                             relation, today)
    current = repo.live_patients(s, account_id)
    rules.check_can_add_patient([rules.Relation(p.relation) for p in current], relation)
    person = _get_or_create_person(s, info, now)
    if isinstance(info, rules.BirthCertificate) and (person.birth_date, person.sex) != (info.birth_date, info.sex):
        # The same certificate added by another account with another birth date or sex: one is mistyped.
        raise DomainError("VALIDATION_ERROR", "出生日期或性别与该出生医学证明已登记的信息不符，请核对")
    if any(p.person_id == person.id for p in current):
        raise DomainError("PATIENT_EXISTS")
    patient = Patient(account_id=account_id, person_id=person.id, name=name, phone=phone,
                      phone_masked=rules.mask_phone(phone), relation=relation,
                      insurance_type=rules.InsuranceType(insurance_type), created_at=now)
    if isinstance(info, rules.BirthCertificate):
        patient.guardian_id_number = info.guardian.number
        patient.guardian_id_masked = rules.mask_id(info.guardian.number)
    try:
        with s.begin_nested():
            s.add(patient)
            s.flush()
    except IntegrityError:
        raise DomainError("PATIENT_EXISTS") from None
    # Re-count after insert: two concurrent adds must not pass the limit together.
    if repo.count_live_patients(s, account_id) > rules.MAX_PATIENTS:
        raise DomainError("PATIENT_LIMIT")
    return patient


def give_id_number(s: Session, now: datetime, account_id: int, patient_id: int,
                   id_number: str) -> tuple[Patient, Person]:
    """A child added by birth certificate (A2) has been given a resident ID number: the same person, from
    now on known by it under every account (A3); bookings, no-shows and bans stay theirs. An ID number
    already registered as another person is refused rather than merged: which record to keep is for a
    person to decide (remove the duplicate patient, then add by ID number)."""
    patient = get_patient(s, account_id, patient_id)
    person = s.get(Person, patient.person_id, with_for_update=True)
    if person.id_kind != rules.ID_KIND_BIRTH_CERT:
        raise DomainError("VALIDATION_ERROR", "该就诊人已使用身份证号码登记")
    info = rules.check_id_for_certificate(id_number, person.birth_date, person.sex, local(now).date())
    identity = _identity(rules.ID_KIND_RESIDENT, info.number)
    if repo.person_by_id_number(s, info.number) is not None:
        raise DomainError("ID_NUMBER_REGISTERED")
    for column, value in identity.items():
        setattr(person, column, value)
    try:
        with s.begin_nested():
            s.flush()
    except IntegrityError:  # registered by another account at this very moment
        raise DomainError("ID_NUMBER_REGISTERED") from None
    return patient, person


def get_patient(s: Session, account_id: int, patient_id: int) -> Patient:
    patient = repo.own_patient(s, account_id, patient_id)
    if patient is None:
        raise DomainError("NOT_FOUND", "未找到该就诊人")
    return patient


def remove_patient(s: Session, now: datetime, account_id: int, patient_id: int) -> None:
    patient = get_patient(s, account_id, patient_id)
    if patient.relation == rules.Relation.SELF:
        raise DomainError("SELF_PATIENT_REQUIRED")
    pending = s.scalar(select(Booking.id).where(
        Booking.patient_id == patient.id, Booking.status.in_(("booked", "checked_in"))).limit(1))
    if pending:
        raise DomainError("PATIENT_HAS_BOOKINGS")
    patient.removed_at = now


def bind_visit_card(s: Session, now: datetime, account_id: int, patient_id: int,
                    hospital_id: int, card_number: str) -> VisitCard:
    patient = get_patient(s, account_id, patient_id)
    if s.get(Hospital, hospital_id) is None:
        raise DomainError("NOT_FOUND", "未找到该医院")
    card_number = (card_number or "").strip()
    if not (4 <= len(card_number) <= 40) or not card_number.isalnum():
        raise DomainError("VALIDATION_ERROR", "就诊卡号应为4–40位字母或数字")
    card = s.scalar(select(VisitCard).where(VisitCard.patient_id == patient.id,
                                            VisitCard.hospital_id == hospital_id))
    if card:
        card.card_number = card_number
    else:
        card = VisitCard(patient_id=patient.id, hospital_id=hospital_id, card_number=card_number,
                         created_at=now)
        s.add(card)
    s.flush()
    return card


def visit_cards(s: Session, patient_ids: list[int]) -> dict[int, list[VisitCard]]:
    out: dict[int, list[VisitCard]] = {pid: [] for pid in patient_ids}
    if patient_ids:
        for c in s.scalars(select(VisitCard).where(VisitCard.patient_id.in_(patient_ids))):
            out[c.patient_id].append(c)
    return out

