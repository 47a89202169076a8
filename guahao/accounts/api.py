from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request, Response
from fastapi.security import OAuth2PasswordRequestForm
from sqlalchemy import select

from guahao.accounts import rules, service
from guahao.accounts.models import Patient, Person
from guahao.accounts.schemas import (AccountIn, AccountOut, IdNumberIn, PatientIn, PatientOut, TokenOut,
                                     VisitCardIn, VisitCardOut)
from guahao.audit.service import record
from guahao.deps import DB, AccountId, ClientIp, Now, ReadSession
from guahao.security.guards import login_attempt

router = APIRouter(prefix="/api/v1", tags=["accounts"])
Id = Annotated[int, Path(ge=1, le=2**31 - 1)]


def patient_out(p: Patient, person: Person, cards=()) -> PatientOut:
    return PatientOut(id=p.id, name=p.name, id_number=person.id_masked, phone=p.phone_masked,
                      id_type="birth_certificate" if person.id_kind == rules.ID_KIND_BIRTH_CERT else "resident_id",
                      guardian_id_number=p.guardian_id_masked,
                      relation=p.relation, insurance_type=p.insurance_type, birth_date=person.birth_date,
                      sex=person.sex, visit_cards=[VisitCardOut(hospital_id=c.hospital_id,
                                                                card_number=c.card_number) for c in cards])


@router.post("/accounts", status_code=201, response_model=AccountOut)
def create_account(body: AccountIn, request: Request, db: DB, now: Now, ip: ClientIp):
    if request.app.state.settings.require_sms_code:
        from guahao.notifications.codes import confirm_code

        confirm_code(db, now, body.phone, "signup", body.sms_code)
    with db.transaction() as s:
        account = service.register(s, now, body.phone, body.password, body.name, body.id_number)
        self_id = s.scalar(select(Patient.id).where(Patient.account_id == account.id))
        # Audit details carry masked values only (A6).
        record(s, now, "account", account.id, "account.create", "account", account.id,
               {"phone": account.phone_masked, "self_patient_id": self_id}, ip=ip)
        return AccountOut(id=account.id, phone=account.phone_masked, self_patient_id=self_id)


@router.post("/auth/token", response_model=TokenOut)
def token(form: Annotated[OAuth2PasswordRequestForm, Depends()], request: Request, db: DB, now: Now):
    login_attempt(request, form.username)  # credential stuffing / brute force: 429 before hashing
    with db.reading() as s:
        return TokenOut(access_token=service.login(s, now, form.username, form.password))


def _list(s, account_id: int) -> list[PatientOut]:
    rows = s.execute(select(Patient, Person).join(Person, Person.id == Patient.person_id).where(
        Patient.account_id == account_id, Patient.removed_at.is_(None)).order_by(Patient.id)).all()
    cards = service.visit_cards(s, [p.id for p, _ in rows])
    return [patient_out(p, person, cards[p.id]) for p, person in rows]


@router.get("/patients", response_model=list[PatientOut])
def list_patients(account_id: AccountId, s: ReadSession):
    return _list(s, account_id)


@router.post("/patients", status_code=201, response_model=PatientOut)
def add_patient(body: PatientIn, account_id: AccountId, db: DB, now: Now, ip: ClientIp):
    with db.transaction() as s:
        bc = body.birth_certificate
        p = service.add_patient(s, now, account_id, body.name, body.id_number, body.phone, body.relation,
                                body.insurance_type, bc and service.BirthCertificateIn(**bc.model_dump()))
        person = s.get(Person, p.person_id)
        details = {"id_number": person.id_masked, "phone": p.phone_masked, "relation": p.relation}
        if p.guardian_id_masked:
            details["guardian_id_number"] = p.guardian_id_masked
        record(s, now, "account", account_id, "patient.add", "patient", p.id, details, ip=ip)
        return patient_out(p, person)


@router.get("/patients/{patient_id}", response_model=PatientOut)
def get_patient(patient_id: Id, account_id: AccountId, s: ReadSession):
    p = service.get_patient(s, account_id, patient_id)
    return patient_out(p, s.get(Person, p.person_id), service.visit_cards(s, [p.id])[p.id])


@router.put("/patients/{patient_id}/id-number", response_model=PatientOut)
def give_id_number(patient_id: Id, body: IdNumberIn, account_id: AccountId, db: DB, now: Now, ip: ClientIp):
    """A child added by birth certificate has been given a resident ID number (A2)."""
    with db.transaction() as s:
        p, person = service.give_id_number(s, now, account_id, patient_id, body.id_number)
        record(s, now, "account", account_id, "patient.id_number", "patient", patient_id,
               {"id_number": person.id_masked}, ip=ip)
        return patient_out(p, person, service.visit_cards(s, [p.id])[p.id])


@router.delete("/patients/{patient_id}", status_code=204)
def delete_patient(patient_id: Id, account_id: AccountId, db: DB, now: Now, ip: ClientIp):
    with db.transaction() as s:
        service.remove_patient(s, now, account_id, patient_id)
        record(s, now, "account", account_id, "patient.remove", "patient", patient_id, ip=ip)
    return Response(status_code=204)


@router.put("/patients/{patient_id}/visit-cards", response_model=VisitCardOut)
def bind_visit_card(patient_id: Id, body: VisitCardIn, account_id: AccountId, db: DB, now: Now,
                    ip: ClientIp):
    with db.transaction() as s:
        c = service.bind_visit_card(s, now, account_id, patient_id, body.hospital_id, body.card_number)
        record(s, now, "account", account_id, "visit_card.bind", "patient", patient_id,
               {"card_number": c.card_number}, hospital_id=c.hospital_id, ip=ip)
        return VisitCardOut(hospital_id=c.hospital_id, card_number=c.card_number)
