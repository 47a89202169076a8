"""Booking through the API, on SQLite and PostgreSQL: R1–R3, L1–L5, X1, X3, idempotency."""

from datetime import date, timedelta

import pytest
import time_machine
from fastapi.responses import JSONResponse

from guahao.errors import DomainError

from tests import factories as f

NOW = f.local_dt(2026, 12, 1, 10, 0)  # a Tuesday
D1 = date(2026, 12, 2)


@pytest.fixture
def frozen():
    with time_machine.travel(NOW, tick=False) as t:
        yield t


@pytest.fixture
def world(db):
    """A hospital with one department, two doctors and sessions over the coming days."""
    with db.transaction() as s:
        h = f.hospital(s)
        d1 = f.department(s, h, "心血管内科")
        d2 = f.department(s, h, "消化内科")
        doc = f.doctor(s, d1)
        doc2 = f.doctor(s, d2)
        sessions = {}
        for i in range(0, 7):
            day = D1 + timedelta(days=i)
            sessions[(doc.id, day, "AM")] = f.session(s, doc, day, "AM", capacity=5)
            sessions[(doc.id, day, "PM")] = f.session(s, doc, day, "PM", capacity=5)
            sessions[(doc2.id, day, "AM")] = f.session(s, doc2, day, "AM", capacity=5)
        slots = {k: f.slot_ids(s, v) for k, v in sessions.items()}
        return dict(h=h.id, d1=d1.id, d2=d2.id, doc=doc.id, doc2=doc2.id, slots=slots)


def book(client, headers, slot_id, patient_id, **kw):
    return client.post("/api/v1/appointments", headers={**headers, **kw.pop("extra_headers", {})},
                       json=dict(slot_id=slot_id, patient_id=patient_id, insurance_type="local"))


def test_book_list_cancel(client, world, frozen):
    h, pid, _ = f.signup(client)
    sid = world["slots"][(world["doc"], D1, "AM")][2]
    r = book(client, h, sid, pid)
    assert r.status_code == 201, r.text
    b = r.json()
    assert b["status"] == "booked" and b["sequence_number"] == 3 and b["fee"] == 6000
    assert b["visit_date"] == "2026-12-02" and b["period"] == "AM" and len(b["serial_number"]) == 16
    assert b["department"]["name"] == "心血管内科" and b["check_in_place"] == "门诊楼2层"
    assert b["cancel_deadline"].startswith("2026-12-01T07:00:00")  # 15:00 Shanghai the day before
    avail = client.get(f"/api/v1/slots?department_id={world['d1']}&date=2026-12-02").json()
    am = next(x for x in avail["sessions"] if x["period"] == "AM")
    assert am["remaining"] == 4
    assert {x["id"]: x["status"] for x in avail["slots"]}[sid] == "taken"
    assert [a["id"] for a in client.get("/api/v1/appointments", headers=h).json()] == [b["id"]]
    # The answer is built from what the booking wrote, not read back: it must equal a later read exactly.
    assert client.get(f"/api/v1/appointments/{b['id']}", headers=h).json() == b
    r = client.post(f"/api/v1/appointments/{b['id']}/cancel", headers=h)
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    # X1: a cancelled slot is bookable again at once.
    assert book(client, h, sid, pid).status_code == 201


def test_slot_taken_and_session_full(client, world, frozen):
    slots = world["slots"][(world["doc"], D1, "AM")]
    users = [f.signup(client) for _ in range(6)]
    assert book(client, users[0][0], slots[0], users[0][1]).status_code == 201
    r = book(client, users[1][0], slots[0], users[1][1])
    assert r.status_code == 409 and r.json()["error"]["code"] == "SLOT_TAKEN"
    for (h, pid, _), sid in zip(users[1:5], slots[1:]):
        assert book(client, h, sid, pid).status_code == 201
    r = book(client, users[5][0], slots[4], users[5][1])
    assert r.json()["error"]["code"] == "SESSION_FULL"
    # Refused by the gate from a body rendered once: the bytes and headers the route's JSONResponse gives.
    again = book(client, users[5][0], slots[4], users[5][1])
    assert again.status_code == 409 and again.content == r.content
    assert again.headers["content-type"] == "application/json"
    assert again.content == JSONResponse(DomainError("SESSION_FULL").body()).body


def test_not_released_until_the_instant(client, world):
    """R1: window 7 days at 07:00 — the sessions of 12-09 open at 07:00 on 12-02, not a second before."""
    sid = world["slots"][(world["doc"], date(2026, 12, 8), "AM")][0]
    with time_machine.travel(f.local_dt(2026, 12, 1, 6, 59, 59), tick=False):
        h, pid, _ = f.signup(client)
        r = book(client, h, sid, pid)
        assert r.status_code == 409 and r.json()["error"]["code"] == "NOT_RELEASED"
        assert "2026-12-01 07:00" in r.json()["error"]["message"]
        avail = client.get(f"/api/v1/slots?doctor_id={world['doc']}&date=2026-12-08").json()
        assert {x["status"] for x in avail["slots"]} == {"not_released"}
    with time_machine.travel(f.local_dt(2026, 12, 1, 7, 0, 0), tick=False):
        assert book(client, h, sid, pid).status_code == 201


def test_no_same_day_booking_by_default(client, world):
    with time_machine.travel(f.local_dt(2026, 12, 2, 7, 30), tick=False):
        h, pid, _ = f.signup(client)
        r = book(client, h, world["slots"][(world["doc"], D1, "PM")][0], pid)
        assert r.json()["error"]["code"] == "OUT_OF_WINDOW"


def test_limits_follow_the_person_across_accounts(client, world, frozen):
    """A3 + L1/L2: the same ID number under two accounts shares one record."""
    idn = f.id_number()
    h1, p1, _ = f.signup(client, id_no=idn)
    h2, _, _ = f.signup(client, name="李四", id_no=f.id_number())
    p2 = client.post("/api/v1/patients", headers=h2, json=dict(
        name="王小明", id_number=idn, phone=f.phone(), relation="父母")).json()["id"]
    doc, doc2 = world["doc"], world["doc2"]
    assert book(client, h1, world["slots"][(doc, D1, "AM")][0], p1).status_code == 201
    r = book(client, h2, world["slots"][(doc, D1, "PM")][0], p2)
    assert r.json()["error"]["code"] == "DUPLICATE_DEPARTMENT_DAY"
    assert book(client, h2, world["slots"][(doc2, D1, "AM")][0], p2).status_code == 201
    # L2 needs a third department on the same day.
    with f_session(client) as s:
        d3 = f.department(s, s.get(__import__("guahao.catalog.models", fromlist=["Hospital"]).Hospital,
                                   world["h"]), "呼吸内科")
        cs = f.session(s, f.doctor(s, d3), D1, "PM")
        third = f.slot_ids(s, cs)[0]
    r = book(client, h1, third, p1)
    assert r.status_code == 409 and r.json()["error"]["code"] == "DAILY_LIMIT"


def f_session(client):
    return client.app.state.db.transaction()


def test_weekly_and_quarter_limits(client, world, frozen):
    h, pid, _ = f.signup(client)
    doc = world["doc"]
    for i in range(3):
        assert book(client, h, world["slots"][(doc, D1 + timedelta(days=i), "AM")][0], pid).status_code == 201
    r = book(client, h, world["slots"][(doc, D1 + timedelta(days=6), "AM")][0], pid)
    assert r.json()["error"]["code"] == "WEEKLY_LIMIT"


def test_blacklisted_person_cannot_book(client, world, frozen):
    from guahao.accounts.models import Ban, Patient

    h, pid, _ = f.signup(client)
    with client.app.state.db.transaction() as s:
        person = s.get(Patient, pid).person_id
        s.add(Ban(person_id=person, starts_on=date(2026, 11, 1), ends_on=date(2027, 2, 1),
                  reason="3次爽约", created_at=NOW))
    r = book(client, h, world["slots"][(world["doc"], D1, "AM")][0], pid)
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "BLACKLISTED" and "2027-02-01" in r.json()["error"]["message"]


def test_cancel_deadline(client, world):
    sid = world["slots"][(world["doc"], D1, "AM")][0]
    with time_machine.travel(NOW, tick=False):
        h, pid, _ = f.signup(client)
        bid = book(client, h, sid, pid).json()["id"]
    with time_machine.travel(f.local_dt(2026, 12, 1, 15, 0, 0), tick=False):
        r = client.post(f"/api/v1/appointments/{bid}/cancel", headers=h)
        assert r.status_code == 409 and r.json()["error"]["code"] == "CANCEL_DEADLINE_PASSED"
    with time_machine.travel(f.local_dt(2026, 12, 1, 14, 59, 59), tick=False):
        assert client.post(f"/api/v1/appointments/{bid}/cancel", headers=h).status_code == 200
        r = client.post(f"/api/v1/appointments/{bid}/cancel", headers=h)
        assert r.json()["error"]["code"] == "NOT_CANCELLABLE"


def test_reschedule_moves_atomically(client, world, frozen):
    h, pid, _ = f.signup(client)
    doc = world["doc"]
    old_sid = world["slots"][(doc, D1, "AM")][0]
    new_sid = world["slots"][(doc, D1 + timedelta(days=1), "PM")][1]
    old = book(client, h, old_sid, pid).json()
    r = client.post(f"/api/v1/appointments/{old['id']}/reschedule", headers=h, json={"slot_id": new_sid})
    assert r.status_code == 201, r.text
    new = r.json()
    assert new["rescheduled_from_id"] == old["id"] and new["sequence_number"] == 2
    assert client.get(f"/api/v1/appointments/{old['id']}", headers=h).json()["status"] == "rescheduled"
    # Other doctor: refused, nothing changes.
    other = world["slots"][(world["doc2"], D1, "AM")][0]
    r = client.post(f"/api/v1/appointments/{new['id']}/reschedule", headers=h, json={"slot_id": other})
    assert r.json()["error"]["code"] == "RESCHEDULE_MISMATCH"
    # Target taken: the old booking stays booked.
    h2, p2, _ = f.signup(client)
    taken = world["slots"][(doc, D1 + timedelta(days=2), "AM")][0]
    assert book(client, h2, taken, p2).status_code == 201
    r = client.post(f"/api/v1/appointments/{new['id']}/reschedule", headers=h, json={"slot_id": taken})
    assert r.json()["error"]["code"] == "SLOT_TAKEN"
    assert client.get(f"/api/v1/appointments/{new['id']}", headers=h).json()["status"] == "booked"
    avail = client.get(f"/api/v1/slots?doctor_id={doc}&date={D1 + timedelta(days=1)}").json()
    assert next(x for x in avail["sessions"] if x["period"] == "PM")["remaining"] == 4


def test_reschedule_checks_limits_as_if_old_were_gone(client, world, frozen):
    """Three bookings in a week: moving one within the week is fine (the old one does not count)."""
    h, pid, _ = f.signup(client)
    doc = world["doc"]
    ids = [book(client, h, world["slots"][(doc, D1 + timedelta(days=i), "AM")][0], pid).json()["id"]
           for i in range(3)]
    r = client.post(f"/api/v1/appointments/{ids[2]}/reschedule", headers=h,
                    json={"slot_id": world["slots"][(doc, D1 + timedelta(days=2), "PM")][0]})
    assert r.status_code == 201, r.text


def test_idempotency_key(client, world, frozen):
    h, pid, _ = f.signup(client)
    slots = world["slots"][(world["doc"], D1, "AM")]
    key = {"Idempotency-Key": "abc-123"}
    r1 = book(client, h, slots[0], pid, extra_headers=key)
    r2 = book(client, h, slots[0], pid, extra_headers=key)
    assert r1.status_code == r2.status_code == 201 and r1.json() == r2.json()
    assert r2.headers.get("Idempotent-Replayed") == "true"
    assert len(client.get("/api/v1/appointments", headers=h).json()) == 1
    r3 = book(client, h, slots[1], pid, extra_headers=key)
    assert r3.status_code == 409 and r3.json()["error"]["code"] == "IDEMPOTENCY_KEY_REUSED"


def test_other_accounts_objects_are_not_found(client, world, frozen):
    h1, p1, _ = f.signup(client)
    h2, p2, _ = f.signup(client)
    sid = world["slots"][(world["doc"], D1, "AM")][0]
    bid = book(client, h1, sid, p1).json()["id"]
    assert client.get(f"/api/v1/appointments/{bid}", headers=h2).json()["error"]["code"] == "NOT_FOUND"
    assert client.post(f"/api/v1/appointments/{bid}/cancel", headers=h2).status_code == 404
    r = book(client, h2, world["slots"][(world["doc"], D1, "AM")][1], p1)
    assert r.status_code == 404 and r.json()["error"]["code"] == "NOT_FOUND"
    assert client.get(f"/api/v1/patients/{p1}", headers=h2).status_code == 404
    assert client.get("/api/v1/appointments").status_code == 401


def test_quarter_limit_through_the_api(client, db, frozen):
    """L4: with a 30-day window, 3 + 2 bookings in two weeks, the 6th within 90 days is refused."""
    with db.transaction() as s:
        h = f.hospital(s, window_days=30)
        depts = [f.department(s, h, f"科室{i}") for i in range(6)]
        days = [1, 2, 3, 8, 9, 10]
        slots = [f.slot_ids(s, f.session(s, f.doctor(s, d), NOW.date() + timedelta(days=k)))[0]
                 for d, k in zip(depts, days)]
    hd, pid, _ = f.signup(client)
    for sid in slots[:5]:
        assert book(client, hd, sid, pid).status_code == 201
    r = book(client, hd, slots[5], pid)
    assert r.status_code == 409 and r.json()["error"]["code"] == "QUARTER_LIMIT"
    assert "90" in r.json()["error"]["message"]


def test_stopped_session_and_offline_only_number_types(client, world, frozen):
    from guahao.schedule.models import ClinicSession, Slot

    h, pid, _ = f.signup(client)
    a = world["slots"][(world["doc"], D1, "AM")][0]
    b = world["slots"][(world["doc"], D1, "PM")][0]
    with client.app.state.db.transaction() as s:
        s.get(ClinicSession, s.get(Slot, a).session_id).status = "stopped"
        s.get(ClinicSession, s.get(Slot, b).session_id).online_bookable = False
    assert book(client, h, a, pid).json()["error"]["code"] == "SESSION_STOPPED"
    assert book(client, h, b, pid).json()["error"]["code"] == "NOT_BOOKABLE_ONLINE"


def test_a_booking_answer_has_the_bytes_the_schema_renders(db, client, frozen):
    """booking.api.created serialises with pydantic-core (model_dump_json) for speed; its body must stay
    what JSONResponse made of model_dump(mode="json"), field for field and byte for byte."""
    from sqlalchemy import text

    from guahao.booking import service
    from guahao.booking.api import appointment_out, created

    with db.transaction() as s:
        doc = f.doctor(s, f.department(s, f.hospital(s)))
        slot = f.slot_ids(s, f.session(s, doc, D1, "AM"))[0]
    _, pid, _ = f.signup(client, name="张三丰")
    with db.transaction() as s:
        account = s.execute(text("SELECT account_id FROM patients WHERE id = :p"), dict(p=pid)).scalar()
        view = service.book_with_view(s, NOW, account, slot, pid, "local")
    answer = created(view)
    assert answer.status_code == 201 and answer.media_type == "application/json"
    assert answer.body == JSONResponse(appointment_out(view).model_dump(mode="json")).body
    assert "张三丰".encode() in answer.body and b"\\u" not in answer.body  # not ASCII-escaped
