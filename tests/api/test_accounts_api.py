"""A1–A6 through the API, on SQLite and PostgreSQL."""

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
