"""The waitlist (W1): join a full session, place in line, leave, filled on cancel with limits re-checked."""

from datetime import date

import pytest
import time_machine
from sqlalchemy import select

from guahao.accounts.models import Ban, Patient
from guahao.booking.models import Booking
from guahao.waitlist.models import WaitlistEntry
from tests import factories as f
from tests.clockwork_helpers import outbox

NOW = f.local_dt(2026, 12, 1, 10, 0)
DAY = date(2026, 12, 3)


@pytest.fixture
def frozen():
    with time_machine.travel(NOW, tick=False) as t:
        yield t


@pytest.fixture
def full(db, client, frozen):
    """A 2-place session, booked out by two patients; plus a second session of another doctor."""
    with db.transaction() as s:
        h = f.hospital(s)
        d = f.department(s, h)
        doc = f.doctor(s, d)
        cs = f.session(s, doc, DAY, capacity=2)
        sids = f.slot_ids(s, cs)
        cs2 = f.session(s, f.doctor(s, f.department(s, h, "消化内科")), DAY, capacity=2)
        out = dict(cs=cs.id, sids=sids, cs2=cs2.id, cs2_sids=f.slot_ids(s, cs2), h=h.id)
    holders = []
    for sid in sids:
        hh, pid, ph = f.signup(client)
        bid = client.post("/api/v1/appointments", headers=hh, json=dict(slot_id=sid, patient_id=pid)).json()["id"]
        holders.append((hh, pid, bid))
    out["holders"] = holders
    return out


def join(client, h, session_id, pid):
    return client.post("/api/v1/waitlist", headers=h, json=dict(session_id=session_id, patient_id=pid,
                                                                insurance_type="local"))


def test_join_only_a_full_session_and_see_your_place(client, full):
    a, b = f.signup(client), f.signup(client)
    r = join(client, a[0], full["cs2"], a[1])
    assert r.status_code == 409 and r.json()["error"]["code"] == "WAITLIST_NOT_FULL"
    ra = join(client, a[0], full["cs"], a[1])
    rb = join(client, b[0], full["cs"], b[1])
    assert ra.status_code == rb.status_code == 201
    assert (ra.json()["place"], rb.json()["place"]) == (1, 2)
    assert join(client, a[0], full["cs"], a[1]).json()["error"]["code"] == "WAITLIST_ALREADY_JOINED"
    holder_h, holder_pid, _ = full["holders"][0]
    assert join(client, holder_h, full["cs"], holder_pid).json()["error"]["code"] == "WAITLIST_ALREADY_BOOKED"
    # Leaving moves the next one up.
    assert client.delete(f"/api/v1/waitlist/{ra.json()['id']}", headers=a[0]).json()["status"] == "left"
    assert client.get(f"/api/v1/waitlist/{rb.json()['id']}", headers=b[0]).json()["place"] == 1
    assert client.get(f"/api/v1/waitlist/{rb.json()['id']}", headers=a[0]).status_code == 404
    assert [e["id"] for e in client.get("/api/v1/waitlist", headers=b[0]).json()] == [rb.json()["id"]]


def test_cancel_gives_the_slot_to_the_first_eligible_waiting_person(client, db, full):
    first, second, third = f.signup(client), f.signup(client), f.signup(client)
    for u in (first, second, third):
        assert join(client, u[0], full["cs"], u[1]).status_code == 201
    # The first in line got banned after joining: limits are checked again at fill time (W1, L5).
    with db.transaction() as s:
        person = s.get(Patient, first[1]).person_id
        s.add(Ban(person_id=person, starts_on=date(2026, 12, 1), ends_on=date(2027, 3, 1), reason="test",
                  created_at=NOW))
    holder_h, _, holder_bid = full["holders"][0]
    r = client.post(f"/api/v1/appointments/{holder_bid}/cancel", headers=holder_h)
    assert r.status_code == 200
    mine = client.get("/api/v1/appointments", headers=second[0]).json()
    assert len(mine) == 1 and mine[0]["status"] == "booked" and mine[0]["sequence_number"] == 1
    with db.reading() as s:
        entries = {e.patient_id: e for e in s.scalars(select(WaitlistEntry))}
        assert entries[second[1]].status == "filled" and entries[second[1]].booking_id == mine[0]["id"]
        assert entries[first[1]].status == "waiting" and entries[first[1]].last_skip_reason == "BLACKLISTED"
        assert entries[third[1]].status == "waiting"
    assert client.get(f"/api/v1/waitlist/{entries[third[1]].id}", headers=third[0]).json()["place"] == 2
    from tests.clockwork_helpers import staff_headers
    q = client.get(f"/api/v1/staff/sessions/{full['cs']}/waitlist", headers=staff_headers(client, "clerk", full["h"]))
    assert [(e["status"], e["place"]) for e in q.json()] == [("waiting", 1), ("filled", None), ("waiting", 2)]
    assert all("*" in e["patient"] and "****" in e["phone"] for e in q.json())
    msgs = outbox(db, "waitlist_filled")
    assert len(msgs) == 1 and msgs[0].booking_id == mine[0]["id"] and "候补成功" in msgs[0].body
    # No place stays free while an eligible person waits: the session is full again.
    avail = client.get(f"/api/v1/slots?doctor_id={_doctor(db, full['cs'])}&date={DAY}").json()
    assert avail["sessions"][0]["remaining"] == 0


def test_limits_checked_at_join(client, db, full):
    u = f.signup(client)
    # Already booked into another department the same day twice → L2 at join.
    with db.transaction() as s:
        from guahao.schedule.models import ClinicSession
        h = s.get(ClinicSession, full["cs"]).hospital_id
        from guahao.catalog.models import Hospital
        hosp = s.get(Hospital, h)
        sids = [f.slot_ids(s, f.session(s, f.doctor(s, f.department(s, hosp, n)), DAY))[0] for n in ("眼科", "骨科")]
    for sid in sids:
        assert client.post("/api/v1/appointments", headers=u[0], json=dict(slot_id=sid, patient_id=u[1])).status_code == 201
    assert join(client, u[0], full["cs"], u[1]).json()["error"]["code"] == "DAILY_LIMIT"


def test_worker_fill_serves_a_place_freed_without_a_cancel(client, db, full):
    """Safety net: a place freed some other way (here: a stopped booking set by hand) is filled by the job."""
    from guahao.worker.jobs import JOBS, run_job

    u = f.signup(client)
    assert join(client, u[0], full["cs"], u[1]).status_code == 201
    with db.transaction() as s:
        from guahao.booking.repository import free_place
        b = s.get(Booking, full["holders"][1][2])
        b.status = "cancelled"
        free_place(s, b.session_id)
    job = next(j for j in JOBS if j.name == "waitlist_fill")
    assert run_job(db, job, NOW) == 1
    assert run_job(db, job, NOW) == 0
    assert client.get("/api/v1/appointments", headers=u[0]).json()[0]["sequence_number"] == 2


def _doctor(db, cs_id):
    from guahao.schedule.models import ClinicSession
    with db.reading() as s:
        return s.get(ClinicSession, cs_id).doctor_id

