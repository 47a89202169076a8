"""V1 check-in and V2 queue through the API, on SQLite and PostgreSQL."""

import threading

import pytest
import time_machine

from tests import factories as f
from tests.money.helpers import NOW, book, make_world, staff_headers


@pytest.fixture
def world(db):
    return make_world(db)


def _booked(client, world, n, session="am_slots"):
    with time_machine.travel(NOW, tick=False):
        out = []
        for i in range(n):
            h, pid, _ = f.signup(client)
            b = book(client, h, world[session][i], pid)
            out.append((h, b))
        return out


def test_online_check_in_hours_and_errors(client, world):
    (h, b), (h2, _) = _booked(client, world, 2)
    url = f"/api/v1/appointments/{b['id']}/check-in"
    # Seq 1 is booked for 08:00–08:30: check-in opens at 07:00 and closes at 12:00 (end of the half-day).
    with time_machine.travel(f.local_dt(2026, 12, 1, 14, 30), tick=False):
        r = client.post(url, headers=h)
        assert r.status_code == 409 and r.json()["error"]["code"] == "CHECKIN_WRONG_DAY"
        assert "2026-12-02" in r.json()["error"]["message"]
    with time_machine.travel(f.local_dt(2026, 12, 2, 6, 59, 59), tick=False):
        r = client.post(url, headers=h)
        assert r.json()["error"]["code"] == "CHECKIN_NOT_OPEN" and "07:00–12:00" in r.json()["error"]["message"]
    with time_machine.travel(f.local_dt(2026, 12, 2, 12, 0), tick=False):
        assert client.post(url, headers=h).json()["error"]["code"] == "CHECKIN_CLOSED"
    with time_machine.travel(f.local_dt(2026, 12, 2, 7, 0), tick=False):
        # Another account's booking is not found, not "forbidden".
        assert client.post(url, headers=h2).status_code == 404
        r = client.post(url, headers=h)
        assert r.status_code == 200, r.text
        v = r.json()
        assert v["status"] == "checked_in" and v["queue_state"] == "waiting" and v["people_ahead"] == 0
        assert client.post(url, headers=h).json()["error"]["code"] == "ALREADY_CHECKED_IN"
        # A checked-in booking can no longer be cancelled online (and is never `booked` again).
        assert client.post(f"/api/v1/appointments/{b['id']}/cancel", headers=h).status_code == 409


def test_cancelled_booking_cannot_check_in(client, world):
    [(h, b)] = _booked(client, world, 1)
    with time_machine.travel(NOW, tick=False):
        assert client.post(f"/api/v1/appointments/{b['id']}/cancel", headers=h).status_code == 200
    with time_machine.travel(f.local_dt(2026, 12, 2, 8, 0), tick=False):
        r = client.post(f"/api/v1/appointments/{b['id']}/check-in", headers=h)
        assert r.status_code == 409 and r.json()["error"]["code"] == "BOOKING_NOT_ACTIVE"
        assert "已取消" in r.json()["error"]["message"]


def test_clerk_finds_and_checks_in(client, world, db):
    [(h, b)] = _booked(client, world, 1)
    clerk = staff_headers(client, world, "clerk")
    with time_machine.travel(f.local_dt(2026, 12, 2, 7, 45), tick=False):
        r = client.get("/api/v1/staff/check-in/search", params={"serial": b["serial_number"]}, headers=clerk)
        assert [x["booking_id"] for x in r.json()] == [b["id"]]
        assert "*" in r.json()[0]["id_masked"]
        last4 = r.json()[0]["id_masked"][-4:]
        r = client.get("/api/v1/staff/check-in/search", params={"name": b["patient"]["name"], "id_last4": last4},
                       headers=clerk)
        assert [x["booking_id"] for x in r.json()] == [b["id"]]
        r = client.post(f"/api/v1/staff/appointments/{b['id']}/check-in", headers=clerk)
        assert r.status_code == 200 and r.json()["status"] == "checked_in"
    # Another hospital's clerk does not see it.
    other = make_world(db)
    oc = staff_headers(client, other, "clerk")
    with time_machine.travel(f.local_dt(2026, 12, 2, 7, 45), tick=False):
        assert client.get("/api/v1/staff/check-in/search", params={"serial": b["serial_number"]},
                          headers=oc).json() == []
        assert client.post(f"/api/v1/staff/appointments/{b['id']}/check-in", headers=oc).status_code == 404
    from sqlalchemy import select

    from guahao.audit.models import AuditEntry
    with db.reading() as s:
        assert s.scalar(select(AuditEntry.action).where(AuditEntry.target_id == str(b["id"]),
                                                        AuditEntry.actor_type == "staff")) == "booking.check_in"


def test_queue_order_call_pass_complete_and_wait(client, world):
    booked = _booked(client, world, 6)
    doctor = staff_headers(client, world, "doctor")
    sid = world["am"]
    q = f"/api/v1/staff/sessions/{sid}/queue"
    with time_machine.travel(f.local_dt(2026, 12, 2, 9, 30), tick=False):
        # (seq 5 of 8 is booked for 10:00, so everyone may check in by 09:30.) Check in out of order: the queue follows sequence numbers, not arrival.
        for i in (4, 2, 0, 1, 3):  # seq 5, 3, 1, 2, 4 (seq 6 never arrives)
            h, b = booked[i]
            assert client.post(f"/api/v1/appointments/{b['id']}/check-in", headers=h).status_code == 200
        assert [e["sequence_number"] for e in client.get(q, headers=doctor).json()["waiting"]] == [1, 2, 3, 4, 5]
        h5, b5 = booked[4]
        v = client.get(f"/api/v1/appointments/{b5['id']}/queue", headers=h5).json()
        assert v["people_ahead"] == 4 and v["estimated_wait_minutes"] == 40  # no history: 10 min each
        r = client.post(f"{q}/complete", headers=doctor)
        assert r.json()["error"]["code"] == "NOT_CALLING"
    with time_machine.travel(f.local_dt(2026, 12, 2, 10, 0), tick=False):
        assert client.post(f"{q}/call-next", headers=doctor).json()["now_calling"]["sequence_number"] == 1
        assert client.post(f"{q}/call-next", headers=doctor).json()["error"]["code"] == "QUEUE_BUSY"
        # Seq 1 is absent: passed, goes behind the next 3 (2, 3, 4) and before 5.
        r = client.post(f"{q}/pass", headers=doctor).json()
        assert [e["sequence_number"] for e in r["waiting"]] == [2, 3, 4, 1, 5]
        client.post(f"{q}/call-next", headers=doctor)
    with time_machine.travel(f.local_dt(2026, 12, 2, 10, 6), tick=False):
        r = client.post(f"{q}/complete", headers=doctor).json()
        assert [e["sequence_number"] for e in r["done"]] == [2]
        # The doctor's history now says 6 minutes per patient.
        v = client.get(f"/api/v1/appointments/{b5['id']}/queue", headers=h5).json()
        assert v["people_ahead"] == 3 and v["estimated_wait_minutes"] == 18
        h2, b2 = booked[1]
        assert client.get(f"/api/v1/appointments/{b2['id']}", headers=h2).json()["status"] == "completed"
        for expected in (3, 4, 1):
            r = client.post(f"{q}/call-next", headers=doctor).json()
            assert r["now_calling"]["sequence_number"] == expected
            h1, b1 = booked[0]
            v1 = client.get(f"/api/v1/appointments/{b1['id']}/queue", headers=h1).json()
            client.post(f"{q}/complete", headers=doctor)
        assert v1["queue_state"] == "calling" and v1["people_ahead"] == 0 and v1["estimated_wait_minutes"] == 0
        assert client.post(f"{q}/call-next", headers=doctor).json()["now_calling"]["sequence_number"] == 5
        client.post(f"{q}/complete", headers=doctor)
        assert client.post(f"{q}/call-next", headers=doctor).json()["error"]["code"] == "QUEUE_EMPTY"
        assert client.get(q, headers=doctor).json()["not_checked_in"] == 1


def test_other_doctor_cannot_drive_the_queue(client, world, db):
    other = make_world(db)
    od = staff_headers(client, other, "doctor")
    clerk = staff_headers(client, world, "clerk")
    with time_machine.travel(NOW, tick=False):
        r = client.post(f"/api/v1/staff/sessions/{world['am']}/queue/call-next", headers=od)
        assert r.status_code == 404
        assert client.get(f"/api/v1/staff/sessions/{world['am']}/queue", headers=clerk).status_code == 200


def test_concurrent_call_next_never_calls_one_patient_twice(client, world, db):
    booked = _booked(client, world, 4)
    doctor = staff_headers(client, world, "doctor")
    from guahao.staff.service import Staff
    from guahao.visits import service
    from guahao.visits.models import QueueEntry
    from sqlalchemy import select

    with time_machine.travel(f.local_dt(2026, 12, 2, 9, 30), tick=False):
        for h, b in booked:
            assert client.post(f"/api/v1/appointments/{b['id']}/check-in", headers=h).status_code == 200
        me = client.get("/api/v1/staff/me", headers=doctor).json()
    staff = Staff(me["id"], me["username"], me["role"], me["hospital_id"], me["doctor_id"])
    now = f.local_dt(2026, 12, 2, 8, 0)
    results, barrier = [], threading.Barrier(2)

    def screen():
        barrier.wait()
        try:
            with db.transaction() as s:
                results.append(service.call_next(s, now, staff, world["am"]).seq)
        except Exception as e:  # the loser's DomainError
            results.append(getattr(e, "code", repr(e)))

    threads = [threading.Thread(target=screen) for _ in range(2)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert sorted(map(str, results)) == ["1", "QUEUE_BUSY"]
    with db.reading() as s:
        calls = s.scalars(select(QueueEntry.call_count).where(QueueEntry.session_id == world["am"])).all()
    assert sorted(calls) == [0, 0, 0, 1]


def test_clerk_desk_page_checks_in_and_cancels_on_behalf(client, world):
    booked = _booked(client, world, 2)
    from tests.money.helpers import staff_headers as sh

    clerk = sh(client, world, "clerk")
    client.cookies.set("staff_token", clerk["Authorization"].split()[1])
    try:
        with time_machine.travel(f.local_dt(2026, 12, 1, 14, 30), tick=False):
            (_, b1), (_, b2) = booked
            page = client.get("/console/checkin", params={"serial": b2["serial_number"]})
            assert page.status_code == 200 and f"cancel-{b2['id']}" in page.text
            r = client.post(f"/console/checkin/{b2['id']}/cancel")
            assert r.status_code == 200 and "已取消" in r.text
            r = client.post(f"/console/checkin/{b1['id']}")  # the day before: refused with the reason
            assert r.status_code == 409 and "就诊日为2026-12-02" in r.text
        with time_machine.travel(f.local_dt(2026, 12, 2, 7, 30), tick=False):
            r = client.post(f"/console/checkin/{b1['id']}")
            assert r.status_code == 200 and "报到成功" in r.text
    finally:
        client.cookies.clear()
