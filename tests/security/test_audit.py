"""Audit log: patient-data changes recorded with who/when/what/where; admins view it (scoped);
the table refuses UPDATE and DELETE in the database itself."""

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from tests import factories as f
from tests.security.conftest import NOW, staff_token


def _audit(client, headers, **params):
    r = client.get("/api/v1/admin/audit", headers=headers, params=params)
    assert r.status_code == 200, r.text
    return r.json()


def test_patient_data_changes_are_recorded(client, world):
    a = world["a"]
    idn, ph = f.id_number(), f.phone()
    r = client.post("/api/v1/patients", headers=a, json=dict(name="欧阳小", id_number=idn, phone=ph,
                                                             relation="子女"))
    child = r.json()["id"]
    assert client.delete(f"/api/v1/patients/{child}", headers=a).status_code == 204
    admin = staff_token(client, "admin")
    entries = _audit(client, admin)
    actions = [e["action"] for e in reversed(entries)]
    assert actions == ["account.create", "account.create", "visit_card.bind", "patient.add", "patient.remove"]
    add = next(e for e in entries if e["action"] == "patient.add")
    account_id = next(e for e in entries if e["action"] == "account.create" and
                      e["details"]["self_patient_id"] == world["a_patient"])["actor_id"]
    assert add["actor_type"] == "account" and add["actor_id"] == account_id
    assert add["target_type"] == "patient" and add["target_id"] == str(child)
    assert add["ip"] == "testclient" and add["at"].startswith("2026-12-01T02:00:00")  # 10:00 Shanghai
    # Masked values only, never the plain ones.
    assert add["details"]["id_number"] == idn[:6] + "********" + idn[-4:]
    assert idn not in str(entries) and ph not in str(entries) and world["a_phone"] not in str(entries)
    bind = next(e for e in entries if e["action"] == "visit_card.bind")
    assert bind["hospital_id"] == world["h1"]


def test_a_failed_change_leaves_no_entry(client, world):
    before = len(_audit(client, staff_token(client, "admin")))
    r = client.post("/api/v1/patients", headers=world["a"], json=dict(
        name="欧阳秘密", id_number=world["a_id_number"], phone=f.phone(), relation="子女"))
    assert r.status_code == 409
    assert len(_audit(client, staff_token(client, "admin"))) == before


def test_who_may_read_the_audit_log(client, world):
    assert len(_audit(client, staff_token(client, "admin"))) == 3
    h1 = _audit(client, staff_token(client, "h1-admin"))
    assert [e["action"] for e in h1] == ["visit_card.bind"]
    # A hospital admin asking for another hospital's entries still gets only their own (none here).
    assert _audit(client, staff_token(client, "h2-admin"), hospital_id=world["h1"]) == []
    assert _audit(client, staff_token(client, "h2-admin")) == []
    for who in ("h1-clerk", "h1-doctor"):
        r = client.get("/api/v1/admin/audit", headers=staff_token(client, who))
        assert r.status_code == 403 and r.json()["error"]["code"] == "FORBIDDEN"
    assert client.get("/api/v1/admin/audit", headers=world["a"]).status_code == 401
    assert client.get("/api/v1/admin/audit").status_code == 401


def test_filters_and_paging(client, world):
    admin = staff_token(client, "admin")
    assert [e["action"] for e in _audit(client, admin, action="visit_card.bind")] == ["visit_card.bind"]
    first = _audit(client, admin, limit=2)
    rest = _audit(client, admin, before_id=first[-1]["id"])
    assert len(first) == 2 and len(rest) == 1 and rest[0]["id"] < first[-1]["id"]
    assert _audit(client, admin, since="2026-12-01T10:00:00") != []  # naive = Shanghai time
    assert _audit(client, admin, since="2026-12-01T10:00:01") == []


def test_audit_log_is_append_only_in_the_database(client, world):
    db = client.app.state.db
    for sql in ("UPDATE audit_log SET action = 'x'", "DELETE FROM audit_log"):
        with pytest.raises(DBAPIError):
            with db.engine.begin() as c:
                c.execute(text(sql))
    if db.dialect == "postgresql":
        with pytest.raises(DBAPIError):
            with db.engine.begin() as c:
                c.execute(text("TRUNCATE audit_log"))
    with db.engine.begin() as c:
        assert c.scalar(text("SELECT count(*) FROM audit_log WHERE action <> 'x'")) == 3
        c.execute(text("INSERT INTO audit_log (at, actor_type, actor_id, action, target_type, target_id, "
                       "details) VALUES (:at, 'system', 'test', 'test.insert', 'none', '0', '{}')"),
                  dict(at=NOW.replace(tzinfo=None)))


def test_client_address_behind_a_trusted_proxy(db, frozen):
    from fastapi.testclient import TestClient

    from guahao.app import create_app
    from guahao.config import Settings

    app = create_app(Settings(trusted_proxies=["127.0.0.0/8"]), db=db)
    with TestClient(app, client=("127.0.0.1", 40000)) as c:
        r = c.post("/api/v1/accounts", headers={"X-Forwarded-For": "1.2.3.4, 203.0.113.7, 127.0.0.2"},
                   json=dict(phone=f.phone(), password="secret123", name="刘备", id_number=f.id_number()))
        assert r.status_code == 201
    with db.reading() as s:
        assert s.scalar(text("SELECT ip FROM audit_log")) == "203.0.113.7"


def test_staff_actions_and_defensive_masking(client, world):
    """Other features record staff actions with record_staff; plain IDs/phones in details are masked."""
    from guahao.audit.service import record_staff
    from guahao.staff.service import Staff

    clerk = Staff(id=7, username="h1-clerk", role="clerk", hospital_id=world["h1"], doctor_id=None)
    with client.app.state.db.transaction() as s:
        record_staff(s, NOW, clerk, "booking.check_in", "booking", world["booking"], world["h1"],
                     {"note": f"patient {world['a_id_number']} phone {world['a_phone']}"}, ip="10.1.2.3")
    entries = _audit(client, staff_token(client, "h1-admin"), action="booking.check_in")
    assert len(entries) == 1
    e = entries[0]
    assert e["actor_type"] == "staff" and e["actor_id"] == "7:h1-clerk" and e["details"]["role"] == "clerk"
    assert e["ip"] == "10.1.2.3" and e["hospital_id"] == world["h1"]
    assert world["a_id_number"] not in str(e) and world["a_phone"] not in str(e)
    assert world["a_id_number"][:6] + "********" in e["details"]["note"]
