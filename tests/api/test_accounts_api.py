"""A1–A6 through the API, on SQLite and PostgreSQL."""

from datetime import date, timedelta

from sqlalchemy import text

from tests import factories as f


def test_sign_up_creates_self_patient_and_masks_output(client):
    idn = f.id_number()
    h, pid, ph = f.signup(client, name="阿依古丽·买买提", id_no=idn)
    patients = client.get("/api/v1/patients", headers=h).json()
    assert len(patients) == 1
    p = patients[0]
    assert p["id"] == pid and p["relation"] == "本人" and p["name"] == "阿依古丽·买买提"
    assert p["id_number"] == idn[:6] + "********" + idn[-4:]
    assert p["phone"] == ph[:3] + "****" + ph[-4:]
    assert p["birth_date"] == "1990-05-17"
    assert idn not in client.get(f"/api/v1/patients/{pid}", headers=h).text


def test_id_numbers_and_phones_are_encrypted_at_rest(client, db):
    idn = f.id_number()
    h, pid, ph = f.signup(client, id_no=idn)
    with db.engine.connect() as c:
        dump = " ".join(str(row) for t in ("accounts", "persons", "patients")
                        for row in c.execute(text(f"SELECT * FROM {t}")))
    assert idn not in dump and ph not in dump
    assert idn[:6] + "********" + idn[-4:] in dump  # the masked form is kept for display


def test_sign_up_errors(client):
    good = dict(phone=f.phone(), password="secret123", name="张三", id_number=f.id_number())
    cases = [
        (dict(good, phone="12345"), 422, "INVALID_PHONE"),
        (dict(good, id_number="110105199005170010"), 422, "INVALID_ID_NUMBER"),
        (dict(good, name="张"), 422, "INVALID_NAME"),
        (dict(good, password="short"), 422, "VALIDATION_ERROR"),
        ({"phone": good["phone"]}, 422, "VALIDATION_ERROR"),
    ]
    for body, status, code in cases:
        r = client.post("/api/v1/accounts", json=body)
        assert r.status_code == status and r.json()["error"]["code"] == code, (body, r.text)
        assert r.json()["error"]["message"]
    assert client.post("/api/v1/accounts", json=good).status_code == 201
    r = client.post("/api/v1/accounts", json=dict(good, id_number=f.id_number()))
    assert r.status_code == 409 and r.json()["error"]["code"] == "PHONE_TAKEN"


def test_login(client):
    _, _, ph = f.signup(client)
    assert client.post("/api/v1/auth/token", data=dict(username=ph, password="wrong")).json()["error"]["code"] \
        == "INVALID_CREDENTIALS"
    r = client.post("/api/v1/auth/token", data=dict(username="13000000000", password="secret123"))
    assert r.status_code == 401
    r = client.post("/api/v1/auth/token", data=dict(username=ph, password="secret123"))
    assert r.status_code == 200 and r.json()["token_type"] == "bearer"
    assert client.get("/api/v1/patients", headers={"Authorization": "Bearer nonsense"}).status_code == 401


def test_family_patients_limit_and_removal(client):
    h, self_id, _ = f.signup(client)
    ids = []
    for rel in ("子女", "子女", "父母", "配偶"):
        r = client.post("/api/v1/patients", headers=h, json=dict(
            name="王小宝", id_number=f.id_number(), phone=f.phone(), relation=rel))
        assert r.status_code == 201, r.text
        ids.append(r.json()["id"])
    r = client.post("/api/v1/patients", headers=h, json=dict(
        name="王大宝", id_number=f.id_number(), phone=f.phone(), relation="其他"))
    assert r.status_code == 409 and r.json()["error"]["code"] == "PATIENT_LIMIT"
    assert client.delete(f"/api/v1/patients/{ids[0]}", headers=h).status_code == 204
    assert len(client.get("/api/v1/patients", headers=h).json()) == 4
    r = client.delete(f"/api/v1/patients/{self_id}", headers=h)
    assert r.json()["error"]["code"] == "SELF_PATIENT_REQUIRED"


def test_second_self_and_duplicate_person_refused(client):
    h, _, _ = f.signup(client)
    idn = f.id_number()
    r = client.post("/api/v1/patients", headers=h, json=dict(
        name="李四", id_number=f.id_number(), phone=f.phone(), relation="本人"))
    assert r.json()["error"]["code"] == "SELF_PATIENT_EXISTS"
    body = dict(name="李四", id_number=idn, phone=f.phone(), relation="父母")
    assert client.post("/api/v1/patients", headers=h, json=body).status_code == 201
    r = client.post("/api/v1/patients", headers=h, json=body)
    assert r.status_code == 409 and r.json()["error"]["code"] == "PATIENT_EXISTS"


def test_same_person_under_two_accounts_is_one_person(client, db):
    idn = f.id_number()
    f.signup(client, id_no=idn)
    h2, _, _ = f.signup(client)
    assert client.post("/api/v1/patients", headers=h2, json=dict(
        name="王小明", id_number=idn, phone=f.phone(), relation="子女")).status_code == 201
    with db.engine.connect() as c:
        assert c.execute(text("SELECT count(*) FROM persons")).scalar() == 2
        assert c.execute(text("SELECT count(DISTINCT person_id) FROM patients")).scalar() == 2


def test_visit_card_required_by_hospital(client, db):
    """A5: a hospital may require a visit card before booking."""
    import time_machine

    from datetime import date

    with db.transaction() as s:
        hosp = f.hospital(s, requires_visit_card=True)
        doc = f.doctor(s, f.department(s, hosp))
        sid = f.slot_ids(s, f.session(s, doc, date(2026, 12, 2)))[0]
        hid = hosp.id
    with time_machine.travel(f.local_dt(2026, 12, 1, 10), tick=False):
        h, pid, _ = f.signup(client)
        body = dict(slot_id=sid, patient_id=pid, insurance_type="self_pay")
        r = client.post("/api/v1/appointments", headers=h, json=body)
        assert r.json()["error"]["code"] == "VISIT_CARD_REQUIRED"
        r = client.put(f"/api/v1/patients/{pid}/visit-cards", headers=h,
                       json=dict(hospital_id=hid, card_number="A123456"))
        assert r.status_code == 200
        assert client.get(f"/api/v1/patients/{pid}", headers=h).json()["visit_cards"] == [
            {"hospital_id": hid, "card_number": "A123456"}]
        assert client.post("/api/v1/appointments", headers=h, json=body).status_code == 201


def _child(guardian: str, number: str = "O110123456", **over) -> dict:
    bc = dict(number=number, birth_date=str(date.today() - timedelta(days=400)), sex="M",
              guardian_id_number=guardian)
    return dict(dict(name="王小宝", phone=f.phone(), relation="子女", birth_certificate=bc), **over)


def test_a_child_without_an_id_number_is_added_by_birth_certificate_and_books(client, db):
    """A2: 出生医学证明 number, birth date and sex as written on it, and the guardian's ID number; A3: the
    certificate is the person under every account; A6: numbers masked in answers and encrypted at rest."""
    import time_machine

    with time_machine.travel(f.local_dt(2026, 12, 1, 10), tick=False):  # the booking's day before
        _child_added_and_booked(client, db)


def _child_added_and_booked(client, db):
    guardian = f.id_number()
    h, _, _ = f.signup(client, id_no=guardian)
    body = _child(guardian)
    r = client.post("/api/v1/patients", headers=h, json=body)
    assert r.status_code == 201, r.text
    p = r.json()
    assert (p["id_number"], p["id_type"], p["relation"]) == ("O11****456", "birth_certificate", "子女")
    assert p["guardian_id_number"] == guardian[:6] + "********" + guardian[-4:]
    assert (p["birth_date"], p["sex"]) == (body["birth_certificate"]["birth_date"], "M")
    listed = client.get("/api/v1/patients", headers=h)
    assert "O110123456" not in listed.text and guardian not in listed.text
    assert [x["id_type"] for x in listed.json()] == ["resident_id", "birth_certificate"]
    r = client.post("/api/v1/patients", headers=h, json=_child(guardian))
    assert r.status_code == 409 and r.json()["error"]["code"] == "PATIENT_EXISTS"

    # The other parent adds the same child: one person (limits and no-shows follow it), and a mistyped
    # birth date is caught instead of making a second record.
    h2, _, _ = f.signup(client)
    other = _child(f.id_number())
    wrong = dict(other, birth_certificate=dict(other["birth_certificate"], birth_date=str(date.today())))
    r = client.post("/api/v1/patients", headers=h2, json=wrong)
    assert r.status_code == 422 and "出生日期" in r.json()["error"]["message"]
    assert client.post("/api/v1/patients", headers=h2, json=other).status_code == 201
    with db.engine.connect() as c:
        assert c.execute(text("SELECT count(*) FROM persons WHERE id_kind = 'BC'")).scalar() == 1
        assert c.execute(text("SELECT count(DISTINCT person_id) FROM patients WHERE relation = '子女'")).scalar() == 1
        dump = " ".join(str(row) for t in ("persons", "patients") for row in c.execute(text(f"SELECT * FROM {t}")))
    assert "O110123456" not in dump and guardian not in dump and "O11****456" in dump

    with db.transaction() as s:
        sid = f.slot_ids(s, f.session(s, f.doctor(s, f.department(s, f.hospital(s))), date(2026, 12, 2)))[0]
    r = client.post("/api/v1/appointments", headers=h, json=dict(slot_id=sid, patient_id=p["id"]))
    assert r.status_code == 201, r.text


def test_adding_a_child_by_birth_certificate_refuses_what_does_not_hold(client):
    guardian = f.id_number()
    h, _, _ = f.signup(client, id_no=guardian)
    ok = _child(guardian)
    bc = ok["birth_certificate"]
    cases = [
        (dict(ok, relation="父母"), 422, "VALIDATION_ERROR"),
        (dict(ok, id_number=f.id_number()), 422, "VALIDATION_ERROR"),  # one or the other
        (dict(ok, birth_certificate=None), 422, "INVALID_ID_NUMBER"),  # neither
        (dict(ok, birth_certificate=dict(bc, number="123")), 422, "INVALID_BIRTH_CERTIFICATE"),
        (dict(ok, birth_certificate=dict(bc, birth_date="2000-01-01")), 422, "VALIDATION_ERROR"),
        (dict(ok, birth_certificate=dict(bc, birth_date="2026-13-01")), 422, "VALIDATION_ERROR"),
        (dict(ok, birth_certificate=dict(bc, sex="X")), 422, "VALIDATION_ERROR"),
        (dict(ok, birth_certificate=dict(bc, guardian_id_number="110105199005170010")), 422, "INVALID_ID_NUMBER"),
        (dict(ok, birth_certificate=dict(bc, guardian_id_number=f.id_number(birth=date(2015, 1, 1)))), 422,
         "VALIDATION_ERROR"),
        (dict(ok, birth_certificate=dict(bc, extra=1)), 422, "VALIDATION_ERROR"),
    ]
    for body, status, code in cases:
        r = client.post("/api/v1/patients", headers=h, json=body)
        assert r.status_code == status and r.json()["error"]["code"] == code, (body, r.text)
        assert r.json()["error"]["message"]
    assert len(client.get("/api/v1/patients", headers=h).json()) == 1  # nothing was added


def test_a_child_added_by_birth_certificate_is_given_an_id_number_later(client, db):
    """The same person from then on known by the ID number under every account, bookings kept; an ID
    number that contradicts the certificate, or that is already another person, is refused."""
    born = date.today() - timedelta(days=400)
    guardian = f.id_number()
    h, _, _ = f.signup(client, id_no=guardian)
    child = client.post("/api/v1/patients", headers=h, json=_child(guardian, number="Q120000001")).json()
    h2, _, _ = f.signup(client)
    other = client.post("/api/v1/patients", headers=h2, json=_child(f.id_number(), number="Q120000001")).json()
    with db.reading() as s:
        person = s.execute(text("SELECT person_id FROM patients WHERE id = :p"), dict(p=child["id"])).scalar()
    url = f"/api/v1/patients/{child['id']}/id-number"

    def put(number, headers=h, to=url):
        return client.put(to, headers=headers, json=dict(id_number=number))
    r = put(f.id_number(birth=born - timedelta(days=1), n=101))
    assert r.status_code == 422 and "出生日期或性别" in r.json()["error"]["message"]
    assert put(f.id_number(birth=born, n=100)).status_code == 422  # an even sequence number: a girl's
    taken = f.id_number(birth=born, n=103)
    f.signup(client, id_no=taken)
    assert put(taken).json()["error"]["code"] == "ID_NUMBER_REGISTERED"
    assert put(f.id_number(birth=born, n=105), headers=h2).status_code == 404  # not that account's patient
    assert put("123").json()["error"]["code"] == "INVALID_ID_NUMBER"

    given = f.id_number(birth=born, n=107)
    r = put(given)
    assert r.status_code == 200, r.text
    masked = given[:6] + "********" + given[-4:]
    assert (r.json()["id_number"], r.json()["id_type"], r.json()["birth_date"]) == (masked, "resident_id", str(born))
    assert given not in r.text
    seen_by_other = client.get(f"/api/v1/patients/{other['id']}", headers=h2).json()
    assert (seen_by_other["id_number"], seen_by_other["id_type"]) == (masked, "resident_id")
    with db.reading() as s:
        assert s.execute(text("SELECT person_id FROM patients WHERE id = :p"), dict(p=child["id"])).scalar() == person
        assert s.execute(text("SELECT count(*) FROM persons WHERE id_kind = 'BC'")).scalar() == 0
    assert put(given).json()["error"]["message"] == "该就诊人已使用身份证号码登记"
    # Whoever adds the child by that ID number now finds the same person.
    h3, _, _ = f.signup(client)
    assert client.post("/api/v1/patients", headers=h3, json=dict(
        name="王小宝", id_number=given, phone=f.phone(), relation="子女")).status_code == 201
    with db.reading() as s:
        assert s.execute(text("SELECT count(DISTINCT person_id) FROM patients WHERE relation = '子女'")).scalar() == 1
