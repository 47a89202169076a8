"""Release settings, templates and the generator, calendar overrides, 停诊 — on SQLite and PostgreSQL."""

from datetime import date

import pytest
import time_machine
from sqlalchemy import select

from guahao.audit.models import AuditEntry
from guahao.schedule import hooks
from guahao.schedule.models import ClinicSession, Slot
from tests import factories as f
from tests.clockwork_helpers import outbox, staff_headers


@pytest.fixture
def hosp(db):
    with db.transaction() as s:
        h = f.hospital(s)
        d = f.department(s, h)
        doc = f.doctor(s, d)
        return dict(h=h.id, d=d.id, doc=doc.id)


def _template(client, hdr, doc, weekday, period="AM", cap=3, ntype="专家号", fee=6000):
    r = client.put(f"/api/v1/staff/doctors/{doc}/templates", headers=hdr,
                   json=dict(weekday=weekday, period=period, number_type=ntype, capacity=cap, fee=fee))
    assert r.status_code == 200, r.text
    return r.json()


def _sessions(db, doc):
    with db.reading() as s:
        return {(c.visit_date, c.period): c for c in s.scalars(
            select(ClinicSession).where(ClinicSession.doctor_id == doc))}


def test_weekly_pattern_skips_national_day_and_runs_on_makeup_saturday(client, db, hosp):
    with time_machine.travel(f.local_dt(2026, 9, 27, 10, 0), tick=False):
        hdr = staff_headers(client, hospital_id=hosp["h"])
        for wd in range(5):
            _template(client, hdr, hosp["doc"], wd, "AM")
        _template(client, hdr, hosp["doc"], 2, "PM", cap=2, ntype="普通号", fee=5000)
        r = client.post(f"/api/v1/staff/hospitals/{hosp['h']}/generate-sessions", headers=hdr,
                        json=dict(start="2026-09-28", end="2026-10-12"))
        assert r.status_code == 200, r.text
        out = r.json()
        assert out["holidays"] == [f"2026-10-0{d}" for d in range(1, 8)]
        assert out["makeup_days"] == ["2026-10-10"] and out["warnings"] == []
        got = _sessions(db, hosp["doc"])
        assert not [k for k in got if date(2026, 10, 1) <= k[0] <= date(2026, 10, 7)]
        assert (date(2026, 10, 10), "AM") in got  # make-up Saturday: Monday's pattern
        assert (date(2026, 10, 11), "AM") not in got
        assert (date(2026, 9, 30), "PM") in got and got[(date(2026, 9, 30), "PM")].number_type == "普通号"
        assert out["sessions"] == len(got) == 3 + 1 + 2 + 1 + 1  # 9-28..30, 9-30 PM, 10-08..09, 10-10, 10-12
        cs = got[(date(2026, 10, 10), "AM")]
        assert cs.capacity == 3 and cs.fee == 6000
        # R1: default 07:00, window 7 → released at 07:00 on 10-03.
        assert cs.release_at == f.local_dt(2026, 10, 3, 7, 0)
        with db.reading() as s:
            assert len(list(s.scalars(select(Slot).where(Slot.session_id == cs.id)))) == 3
        again = client.post(f"/api/v1/staff/hospitals/{hosp['h']}/generate-sessions", headers=hdr,
                            json=dict(start="2026-09-28", end="2026-10-12")).json()
        assert again["sessions"] == 0 and again["skipped_existing"] == 8


def test_unknown_year_generates_on_weekdays_with_a_warning_and_overrides_win(client, db, hosp):
    with time_machine.travel(f.local_dt(2026, 12, 28, 10, 0), tick=False):
        admin = staff_headers(client, role="platform_admin")
        hdr = staff_headers(client, hospital_id=hosp["h"])
        _template(client, hdr, hosp["doc"], 4)  # Fridays
        _template(client, hdr, hosp["doc"], 5)  # and a Saturday clinic
        # The platform admin declares 2027-01-01 a holiday; the hospital closes 2027-01-08.
        r = client.put("/api/v1/staff/calendar/2027-01-01", headers=admin, json=dict(is_workday=False, note="元旦"))
        assert r.status_code == 200 and r.json()["kind"] == "holiday" and r.json()["source"] == "platform"
        assert client.put("/api/v1/staff/calendar/2027-01-08", headers=hdr,
                          json=dict(is_workday=False)).json()["error"]["code"] == "FORBIDDEN"
        assert client.put("/api/v1/staff/calendar/2027-01-08", headers=hdr,
                          json=dict(is_workday=False, hospital_id=hosp["h"], note="院内停诊")).status_code == 200
        out = client.post(f"/api/v1/staff/hospitals/{hosp['h']}/generate-sessions", headers=hdr,
                          json=dict(start="2027-01-01", end="2027-01-16")).json()
        assert out["warnings"] and "2027" in out["warnings"][0]
        assert out["holidays"] == ["2027-01-01", "2027-01-08"]
        got = sorted(k[0] for k in _sessions(db, hosp["doc"]))
        assert got == [date(2027, 1, 2), date(2027, 1, 9), date(2027, 1, 15), date(2027, 1, 16)]
        cal = client.get("/api/v1/staff/calendar?start=2027-01-01&end=2027-01-02", headers=hdr).json()
        assert cal["warnings"] and [d["kind"] for d in cal["days"]] == ["holiday", "weekend"]


def test_release_settings_move_unreleased_sessions_only(client, db, hosp):
    with db.transaction() as s:
        doc = s.get(__import__("guahao.catalog.models", fromlist=["Doctor"]).Doctor, hosp["doc"])
        early = f.session(s, doc, date(2026, 12, 3))  # released 11-26 07:00
        late = f.session(s, doc, date(2026, 12, 10))  # would open 12-03 07:00
        early_id, late_id = early.id, late.id
        sid = f.slot_ids(s, late)[0]
    with time_machine.travel(f.local_dt(2026, 12, 1, 10, 0), tick=False):
        hdr = staff_headers(client, hospital_id=hosp["h"])
        other = staff_headers(client, role="clerk", hospital_id=hosp["h"])
        assert client.put(f"/api/v1/staff/hospitals/{hosp['h']}/release-settings", headers=other,
                          json=dict(window_days=14)).status_code == 403
        r = client.put(f"/api/v1/staff/hospitals/{hosp['h']}/release-settings", headers=hdr,
                       json=dict(release_time="08:30:00", window_days=14, reminder_time="19:00:00"))
        assert r.status_code == 200, r.text
        assert r.json()["sessions_moved"] == 1 and r.json()["platform_defaults"]["window_days"] == 7
        assert client.put(f"/api/v1/staff/hospitals/{hosp['h']}/release-settings", headers=hdr,
                          json=dict(window_days=91)).status_code == 422
        got = client.get(f"/api/v1/staff/hospitals/{hosp['h']}/release-settings", headers=hdr).json()
        assert (got["release_time"], got["window_days"], got["reminder_time"]) == ("08:30:00", 14, "19:00:00")
        assert got["cancel_deadline_time"] == "15:00:00" and got["cancel_minutes_before"] is None
    with db.reading() as s:
        assert s.get(ClinicSession, early_id).release_at == f.local_dt(2026, 11, 26, 7, 0)
        assert s.get(ClinicSession, late_id).release_at == f.local_dt(2026, 11, 26, 8, 30)
        assert s.scalar(select(AuditEntry.action).where(AuditEntry.action == "hospital.release_settings"))
    # Window 14 at 08:30: 12-10 is bookable at once now (released 11-26).
    with time_machine.travel(f.local_dt(2026, 12, 1, 10, 0), tick=False):
        h, pid, _ = f.signup(client)
        r = client.post("/api/v1/appointments", headers=h, json=dict(slot_id=sid, patient_id=pid))
        assert r.status_code == 201, r.text


def test_release_instant_window_and_cancel_deadline_edges(client, db, hosp):
    """R1 at the second, R2 window edge, X1 at 15:00 and with a custom deadline — on generated sessions."""
    with time_machine.travel(f.local_dt(2026, 11, 30, 9, 0), tick=False):
        hdr = staff_headers(client, hospital_id=hosp["h"])
        for wd in range(5):
            _template(client, hdr, hosp["doc"], wd)
        client.post(f"/api/v1/staff/hospitals/{hosp['h']}/generate-sessions", headers=hdr,
                    json=dict(start="2026-12-01", end="2026-12-11"))
        _, pid, ph = f.signup(client)
    got = _sessions(db, hosp["doc"])
    with db.reading() as s:
        slot_of = {k: f.slot_ids(s, v) for k, v in got.items()}
    dec9 = slot_of[(date(2026, 12, 9), "AM")]

    def book(sid):
        return client.post("/api/v1/appointments", headers=login(), json=dict(slot_id=sid, patient_id=pid))

    def login():  # tokens last a day; the test spans ten
        tok = client.post("/api/v1/auth/token", data=dict(username=ph, password="secret123")).json()
        return {"Authorization": f"Bearer {tok['access_token']}"}

    with time_machine.travel(f.local_dt(2026, 12, 2, 6, 59, 59), tick=False):
        assert book(dec9[0]).json()["error"]["code"] == "NOT_RELEASED"
    with time_machine.travel(f.local_dt(2026, 12, 2, 7, 0, 0), tick=False):
        b = book(dec9[0])
        assert b.status_code == 201
        # Window edge: 12-10 opens only tomorrow at 07:00.
        assert book(slot_of[(date(2026, 12, 10), "AM")][0]).json()["error"]["code"] == "NOT_RELEASED"
        # Same day (12-02) is outside the window by default.
        assert book(slot_of[(date(2026, 12, 2), "AM")][0]).json()["error"]["code"] == "OUT_OF_WINDOW"
    bid = b.json()["id"]
    with time_machine.travel(f.local_dt(2026, 12, 8, 15, 0, 0), tick=False):
        assert client.post(f"/api/v1/appointments/{bid}/cancel", headers=login()).json()["error"]["code"] == \
            "CANCEL_DEADLINE_PASSED"
    # The hospital moves its deadline to 120 minutes before the period: cancelling works again until 06:00.
    with time_machine.travel(f.local_dt(2026, 12, 8, 15, 0, 0), tick=False):
        hdr = staff_headers(client, hospital_id=hosp["h"])
        assert client.put(f"/api/v1/staff/hospitals/{hosp['h']}/release-settings", headers=hdr,
                          json=dict(cancel_minutes_before=120)).status_code == 200
    with time_machine.travel(f.local_dt(2026, 12, 9, 6, 0, 0), tick=False):
        assert client.post(f"/api/v1/appointments/{bid}/cancel", headers=login()).json()["error"]["code"] == \
            "CANCEL_DEADLINE_PASSED"
    with time_machine.travel(f.local_dt(2026, 12, 9, 5, 59, 59), tick=False):
        assert client.post(f"/api/v1/appointments/{bid}/cancel", headers=login()).json()["status"] == "cancelled"


def test_stop_session_cancels_notifies_and_calls_the_refund_hook(client, db, hosp):
    calls = []
    hooks.booking_stopped_handlers.append(lambda s, now, bid: calls.append(bid))
    try:
        with db.transaction() as s:
            from guahao.catalog.models import Doctor
            cs = f.session(s, s.get(Doctor, hosp["doc"]), date(2026, 12, 3), capacity=3)
            sids = f.slot_ids(s, cs)
            cs_id = cs.id
        with time_machine.travel(f.local_dt(2026, 12, 1, 10, 0), tick=False):
            users = [f.signup(client) for _ in range(2)]
            bids = [client.post("/api/v1/appointments", headers=hh, json=dict(slot_id=sid, patient_id=p)).json()["id"]
                    for (hh, p, _), sid in zip(users, sids)]
            hdr = staff_headers(client, hospital_id=hosp["h"])
            other = staff_headers(client, hospital_id=f_other_hospital(db))
            assert client.post(f"/api/v1/staff/sessions/{cs_id}/stop", headers=other,
                               json=dict(reason="医生外出会诊")).status_code == 404
            r = client.post(f"/api/v1/staff/sessions/{cs_id}/stop", headers=hdr, json=dict(reason="医生外出会诊"))
            assert r.status_code == 200 and r.json()["stopped_bookings"] == 2
            assert client.post(f"/api/v1/staff/sessions/{cs_id}/stop", headers=hdr,
                               json=dict(reason="再次")).json()["error"]["code"] == "SESSION_STOPPED"
            for (hh, _, _), bid in zip(users, bids):
                a = client.get(f"/api/v1/appointments/{bid}", headers=hh).json()
                assert a["status"] == "stopped"
            r = client.post("/api/v1/appointments", headers=users[0][0],
                            json=dict(slot_id=sids[2], patient_id=users[0][1]))
            assert r.json()["error"]["code"] == "SESSION_STOPPED"
        assert sorted(calls) == sorted(bids)
        msgs = outbox(db, "session_stopped")
        assert len(msgs) == 2 and all("医生外出会诊" in m.body and "全额退还" in m.body for m in msgs)
        assert {m.phone_masked for m in msgs} == {u[2][:3] + "****" + u[2][-4:] for u in users}
        with db.reading() as s:
            assert s.get(ClinicSession, cs_id).booked == 0
            assert s.scalar(select(AuditEntry.action).where(AuditEntry.action == "session.stop"))
    finally:
        hooks.booking_stopped_handlers.clear()


def f_other_hospital(db):
    with db.transaction() as s:
        return f.hospital(s, name="别院").id


def test_templates_validation_and_scope(client, db, hosp):
    with time_machine.travel(f.local_dt(2026, 12, 1, 10, 0), tick=False):
        hdr = staff_headers(client, hospital_id=hosp["h"])
        r = client.put(f"/api/v1/staff/doctors/{hosp['doc']}/templates", headers=hdr,
                       json=dict(weekday=7, period="AM", number_type="专家号", capacity=3, fee=100))
        assert r.status_code == 422
        t = _template(client, hdr, hosp["doc"], 1, cap=4)
        t2 = _template(client, hdr, hosp["doc"], 1, cap=9)
        assert t["id"] == t2["id"] and t2["capacity"] == 9
        other = staff_headers(client, hospital_id=f_other_hospital(db))
        assert client.put(f"/api/v1/staff/doctors/{hosp['doc']}/templates", headers=other,
                          json=dict(weekday=1, period="AM", number_type="专家号", capacity=3, fee=1)).status_code == 404
        lst = client.get(f"/api/v1/staff/hospitals/{hosp['h']}/templates", headers=hdr).json()
        assert [x["id"] for x in lst] == [t["id"]]
        assert client.delete(f"/api/v1/staff/templates/{t['id']}", headers=hdr).status_code == 204
        assert client.get(f"/api/v1/staff/hospitals/{hosp['h']}/templates", headers=hdr).json() == []
        assert client.get(f"/api/v1/staff/hospitals/{hosp['h']}/templates").status_code == 401


def test_worker_keeps_the_window_filled_from_templates(client, db, hosp):
    from guahao.worker.jobs import JOBS, run_job

    job = next(j for j in JOBS if j.name == "generate_sessions")
    with time_machine.travel(f.local_dt(2026, 12, 1, 9, 0), tick=False):
        hdr = staff_headers(client, hospital_id=hosp["h"])
        _template(client, hdr, hosp["doc"], 3)  # Thursdays
    assert run_job(db, job, f.local_dt(2026, 12, 1, 9, 0)) == 1  # window 12-02..12-09 (+1): Thu 12-03
    assert run_job(db, job, f.local_dt(2026, 12, 1, 9, 10)) == 0
    assert run_job(db, job, f.local_dt(2026, 12, 3, 9, 0)) == 1  # now 12-10 is reached: Thu 12-10
    assert sorted(k[0] for k in _sessions(db, hosp["doc"])) == [date(2026, 12, 3), date(2026, 12, 10)]
