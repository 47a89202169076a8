"""Patient pages: sign-up, login, logout and my patients (就诊人) with their visit cards (A1–A6)."""

from datetime import date

from typing import Annotated

from fastapi import APIRouter, Form, Request
from sqlalchemy import select

from guahao.accounts import rules as arules
from guahao.accounts import service as accounts
from guahao.accounts.models import Patient, Person
from guahao.audit.service import record
from guahao.catalog.models import Hospital
from guahao.deps import DB, ClientIp, Now
from guahao.errors import DomainError
from guahao.notifications import codes
from guahao.security.guards import sms_attempt
from guahao.web.pagekit import (ACCESS_COOKIE, MAX_ID, Id, check_csrf, redirect, render, require_account,
                                safe_next, set_cookie)

router = APIRouter(include_in_schema=False)
F = Annotated[str, Form()]

RELATIONS = [r.value for r in arules.Relation]
INSURANCE = [(k.value, v) for k, v in arules.INSURANCE_LABELS.items()]


def _signed_in(request: Request, token: str, target: str):
    response = redirect(safe_next(target))
    set_cookie(request, response, ACCESS_COOKIE, token)
    return response


@router.get("/login")
def login_page(request: Request, next: str = "/"):
    return render(request, "patient/login.html", next=safe_next(next), phone="")


@router.post("/login")
def login(request: Request, db: DB, now: Now, phone: F = "", password: F = "", next: F = "/",
          csrf_token: F = ""):
    check_csrf(request, csrf_token)
    try:
        with db.reading() as s:
            token = accounts.login(s, now, phone, password)
    except DomainError as e:
        return render(request, "patient/login.html", status_code=e.status, error=e.message,
                      next=safe_next(next), phone=phone)
    return _signed_in(request, token, next)


@router.get("/signup")
def signup_page(request: Request, next: str = "/"):
    return render(request, "patient/signup.html", next=safe_next(next), form={},
                  need_code=request.app.state.settings.require_sms_code)


@router.post("/signup")
def signup(request: Request, db: DB, now: Now, ip: ClientIp, phone: F = "", password: F = "", name: F = "",
           id_number: F = "", sms_code: F = "", action: F = "signup", next: F = "/", csrf_token: F = ""):
    check_csrf(request, csrf_token)
    need_code = request.app.state.settings.require_sms_code
    # The ID number is not echoed back into the form: it would sit in the page cache.
    again = dict(next=safe_next(next), form=dict(phone=phone, name=name), need_code=need_code)
    try:
        if need_code and action == "send_code":
            # A1 through the same limits and service as POST /api/v1/sms-codes; works without JavaScript.
            sms_attempt(request, phone.strip())
            with db.transaction() as s:
                codes.request_code(s, now, phone, "signup")
            return render(request, "patient/signup.html", notice="验证码已发送，5分钟内有效", **again)
        if need_code:
            codes.confirm_code(db, now, phone, "signup", sms_code.strip())
        with db.transaction() as s:
            account = accounts.register(s, now, phone, password, name, id_number)
            record(s, now, "account", account.id, "account.register", "account", account.id,
                   {"phone": account.phone_masked}, ip=ip)
        with db.reading() as s:
            token = accounts.login(s, now, phone, password)
    except DomainError as e:
        return render(request, "patient/signup.html", status_code=e.status, error=e.message, **again)
    return _signed_in(request, token, next if next != "/" else "/patients?welcome=1")


@router.post("/logout")
def logout(request: Request, csrf_token: F = ""):
    check_csrf(request, csrf_token)
    response = redirect("/")
    response.delete_cookie(ACCESS_COOKIE, path="/")
    return response


def _patients_view(s, account_id: int):
    rows = s.execute(select(Patient, Person).join(Person, Person.id == Patient.person_id).where(
        Patient.account_id == account_id, Patient.removed_at.is_(None)).order_by(Patient.id)).all()
    cards = accounts.visit_cards(s, [p.id for p, _ in rows])
    names = dict(s.execute(select(Hospital.id, Hospital.name).where(
        Hospital.id.in_({c.hospital_id for cs in cards.values() for c in cs}))).all()) if cards else {}
    return [dict(p=p, person=person, cards=[(names.get(c.hospital_id, ""), c) for c in cards[p.id]])
            for p, person in rows]


def _patients_page(request: Request, db, account_id: int, status_code: int = 200, **ctx):
    with db.reading() as s:
        patients = _patients_view(s, account_id)
        hospitals = list(s.execute(select(Hospital.id, Hospital.name).order_by(Hospital.id)).all())
    return render(request, "patient/patients.html", status_code=status_code, patients=patients,
                  hospitals=hospitals, relations=RELATIONS, insurance=INSURANCE,
                  max_patients=arules.MAX_PATIENTS, form=ctx.pop("form", {}), **ctx)


@router.get("/patients")
def patients(request: Request, db: DB, welcome: int = 0, next: str = ""):
    account_id = require_account(request)
    return _patients_page(request, db, account_id, welcome=welcome, next=safe_next(next, ""))


@router.post("/patients")
def add_patient(request: Request, db: DB, now: Now, ip: ClientIp, name: F = "", id_number: F = "",
                phone: F = "", relation: F = "子女", insurance_type: F = "self_pay", next: F = "",
                bc_number: F = "", bc_birth_date: F = "", bc_sex: F = "", guardian_id_number: F = "",
                csrf_token: F = ""):
    account_id = require_account(request)
    check_csrf(request, csrf_token)
    try:
        if relation not in RELATIONS or insurance_type not in arules.INSURANCE_LABELS:
            raise DomainError("VALIDATION_ERROR", "请选择与本人的关系和医保类型")
        child = None
        if bc_number.strip():  # a child without an ID number (A2)
            child = accounts.BirthCertificateIn(bc_number, _form_date(bc_birth_date), bc_sex, guardian_id_number)
        with db.transaction() as s:
            p = accounts.add_patient(s, now, account_id, name, id_number, phone, relation, insurance_type, child)
            record(s, now, "account", account_id, "patient.add", "patient", p.id,
                   {"relation": p.relation}, ip=ip)
    except DomainError as e:
        return _patients_page(request, db, account_id, status_code=e.status, add_error=e.message,
                              form=dict(name=name, phone=phone, relation=relation, insurance_type=insurance_type,
                                        bc_number=bc_number, bc_birth_date=bc_birth_date, bc_sex=bc_sex),
                              next=safe_next(next, ""))
    return redirect(safe_next(next, "/patients?added=1"))


def _form_date(value: str) -> date | None:
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        return None  # the rule then asks for the date


@router.post("/patients/{patient_id}/remove")
def remove_patient(request: Request, patient_id: Id, db: DB, now: Now, ip: ClientIp, csrf_token: F = ""):
    account_id = require_account(request)
    check_csrf(request, csrf_token)
    try:
        with db.transaction() as s:
            accounts.remove_patient(s, now, account_id, patient_id)
            record(s, now, "account", account_id, "patient.remove", "patient", patient_id, ip=ip)
    except DomainError as e:
        return _patients_page(request, db, account_id, status_code=e.status,
                              row_error={patient_id: e.message})
    return redirect("/patients")


@router.post("/patients/{patient_id}/id-number")
def give_id_number(request: Request, patient_id: Id, db: DB, now: Now, ip: ClientIp, id_number: F = "",
                   csrf_token: F = ""):
    account_id = require_account(request)
    check_csrf(request, csrf_token)
    try:
        with db.transaction() as s:
            _, person = accounts.give_id_number(s, now, account_id, patient_id, id_number)
            record(s, now, "account", account_id, "patient.id_number", "patient", patient_id,
                   {"id_number": person.id_masked}, ip=ip)
    except DomainError as e:
        return _patients_page(request, db, account_id, status_code=e.status,
                              row_error={patient_id: e.message})
    return redirect("/patients")


@router.post("/patients/{patient_id}/cards")
def bind_card(request: Request, patient_id: Id, db: DB, now: Now, ip: ClientIp,
              hospital_id: Annotated[int, Form(ge=0, le=MAX_ID)] = 0, card_number: F = "", csrf_token: F = ""):
    account_id = require_account(request)
    check_csrf(request, csrf_token)
    try:
        with db.transaction() as s:
            accounts.bind_visit_card(s, now, account_id, patient_id, hospital_id, card_number)
            record(s, now, "account", account_id, "visit_card.bind", "patient", patient_id,
                   {"hospital_id": hospital_id}, ip=ip)
    except DomainError as e:
        return _patients_page(request, db, account_id, status_code=e.status,
                              row_error={patient_id: e.message})
    return redirect("/patients")
