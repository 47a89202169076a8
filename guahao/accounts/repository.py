from sqlalchemy import func, select
from sqlalchemy.orm import Session

from guahao.accounts.models import Account, Patient, Person
from guahao.privacy import lookup_hash


def account_by_phone(s: Session, phone: str) -> Account | None:
    return s.scalar(select(Account).where(Account.phone_hash == lookup_hash(phone)))


def person_by_id_number(s: Session, number: str) -> Person | None:
    """By resident ID number, or by `rules.person_key` for another kind of identity."""
    return s.scalar(select(Person).where(Person.id_hash == lookup_hash(number)))


def live_patients(s: Session, account_id: int) -> list[Patient]:
    return list(s.scalars(
        select(Patient).where(Patient.account_id == account_id, Patient.removed_at.is_(None))
        .order_by(Patient.id)
    ))


def own_patient(s: Session, account_id: int, patient_id: int) -> Patient | None:
    return s.scalar(select(Patient).where(
        Patient.id == patient_id, Patient.account_id == account_id, Patient.removed_at.is_(None)
    ))


def count_live_patients(s: Session, account_id: int) -> int:
    return s.scalar(select(func.count()).select_from(Patient).where(
        Patient.account_id == account_id, Patient.removed_at.is_(None)))
