"""No-shows (N1) and bans (N2) through the worker jobs, on SQLite and PostgreSQL."""

from datetime import date, datetime, timedelta

import pytest
import time_machine
from sqlalchemy import select

from guahao.accounts.models import Ban, Patient
from guahao.attendance.service import sweep_no_shows
from guahao.audit.models import AuditEntry
from guahao.booking.models import Booking
from guahao.catalog.models import Doctor
from guahao.clock import UTC
from tests import factories as f
from tests.clockwork_helpers import outbox, staff_headers


@pytest.fixture
def clinic(db):
    with db.transaction() as s:
        h = f.hospital(s, window_days=30)
        docs = [f.doctor(s, f.department(s, h, name)) for name in ("心血管内科", "消化内科", "呼吸内科")]
        return dict(h=h.id, docs=[d.id for d in docs])


def _book_on(client, db, clinic, headers, pid, day, n):
    """Book doctor n's morning session of `day` (created on the fly), as the patient would, the day before."""
    with db.transaction() as s:
        cs = f.session(s, s.get(Doctor, clinic["docs"][n]), day, capacity=3)
        sid = f.slot_ids(s, cs)[0]
    r = client.post("/api/v1/appointments", headers=headers, json=dict(slot_id=sid, patient_id=pid))
    assert r.status_code == 201, r.text
    return r.json()["id"]


def _sweep(db, at: datetime):
    with db.transaction() as s:
        return sweep_no_shows(s, at.astimezone(UTC))


def _login(client, ph):
    tok = client.post("/api/v1/auth/token", data=dict(username=ph, password="secret123")).json()["access_token"]
    return {"Authorization": f"Bearer {tok}"}


def test_no_show_when_check_in_closes_and_three_in_a_year_ban_for_three_months(client, db, clinic):
    days = [date(2026, 3, 2), date(2026, 6, 1), date(2026, 12, 14)]
    with time_machine.travel(f.local_dt(2026, 2, 20, 9, 0), tick=False):
        _, pid, ph = f.signup(client)
    bids = []
    for i, d in enumerate(days):
        with time_machine.travel(f.local_dt(d.year, d.month, d.day, 7, 0) - timedelta(days=1), tick=False):
            bids.append(_book_on(client, db, clinic, _login(client, ph), pid, d, i))
        # Check-in closes at the end of the morning (12:00): a second before, nothing happens.
        assert _sweep(db, f.local_dt(d.year, d.month, d.day, 11, 59, 59)) == (0, 0)
        marked, bans = _sweep(db, f.local_dt(d.year, d.month, d.day, 12, 0, 0))
        assert (marked, bans) == (1, 1 if i == 2 else 0)
        assert _sweep(db, f.local_dt(d.year, d.month, d.day, 12, 5)) == (0, 0)  # idempotent
    with db.reading() as s:
        assert [s.get(Booking, b).status for b in bids] == ["no_show"] * 3
        ban = s.scalar(select(Ban))
        assert (ban.starts_on, ban.ends_on) == (date(2026, 12, 14), date(2027, 3, 14))
    # L5: booking answers BLACKLISTED with the end date, into the next year.
    with time_machine.travel(f.local_dt(2027, 1, 5, 9, 0), tick=False):
        with db.transaction() as s:
            cs = f.session(s, s.get(Doctor, clinic["docs"][0]), date(2027, 1, 8))
            sid = f.slot_ids(s, cs)[0]
        r = client.post("/api/v1/appointments", headers=_login(client, ph), json=dict(slot_id=sid, patient_id=pid))
        assert r.status_code == 403 and r.json()["error"]["code"] == "BLACKLISTED"
        assert "2027-03-13" in r.json()["error"]["message"] and r.json()["error"]["details"]["ban_ends_on"] == "2027-03-14"
    banned = outbox(db, "banned")
    assert len(banned) == 1 and "2027年03月13日" in banned[0].body


def test_no_shows_across_new_year_count_per_calendar_year(client, db, clinic):
    with time_machine.travel(f.local_dt(2026, 12, 20, 9, 0), tick=False):
        _, pid, ph = f.signup(client)
    plan = [date(2026, 12, 29), date(2026, 12, 31), date(2027, 1, 4)]
    for i, d in enumerate(plan):
        with time_machine.travel(f.local_dt(d.year, d.month, d.day, 8, 0) - timedelta(days=1), tick=False):
            _book_on(client, db, clinic, _login(client, ph), pid, d, i)
    # The worker was down for six weeks: one late sweep marks all three, yet no year has three.
    assert _sweep(db, f.local_dt(2027, 2, 15, 9, 0)) == (3, 0)
    with db.reading() as s:
        assert s.scalar(select(Ban)) is None


def test_sixth_no_show_bans_six_months_and_staff_can_lift_with_audit(client, db, clinic):
    with time_machine.travel(f.local_dt(2026, 1, 1, 9, 0), tick=False):
        _, pid, ph = f.signup(client)
    with db.reading() as s:
        person = s.get(Patient, pid).person_id
    # Six no-shows in 2026; the 4th waits until the first ban (03-10 → 06-10) has run out.
    days = [date(2026, 1, 10), date(2026, 2, 10), date(2026, 3, 10), date(2026, 6, 20), date(2026, 8, 10),
            date(2026, 11, 10)]
    for i, d in enumerate(days):
        with time_machine.travel(f.local_dt(d.year, d.month, d.day, 8, 0) - timedelta(days=1), tick=False):
            _book_on(client, db, clinic, _login(client, ph), pid, d, i % 3)
        _sweep(db, f.local_dt(d.year, d.month, d.day, 18, 0))
    with db.reading() as s:
        bans = list(s.scalars(select(Ban).where(Ban.person_id == person).order_by(Ban.id)))
    assert [(b.starts_on, b.ends_on) for b in bans] == [(date(2026, 3, 10), date(2026, 6, 10)),
                                                        (date(2026, 11, 10), date(2027, 5, 10))]
    with time_machine.travel(f.local_dt(2026, 11, 11, 9, 0), tick=False):
        admin = staff_headers(client, role="platform_admin")
        clerk = staff_headers(client, role="clerk", hospital_id=clinic["h"])
        listed = client.get("/api/v1/staff/bans", headers=admin).json()
        assert [b["id"] for b in listed] == [bans[1].id]
        assert "*" * 8 in listed[0]["person_id_number"]
        assert client.post(f"/api/v1/staff/bans/{bans[1].id}/lift", headers=clerk,
                           json=dict(reason="误判")).status_code == 403
        r = client.post(f"/api/v1/staff/bans/{bans[1].id}/lift", headers=admin, json=dict(reason="患者急诊住院，核实后解除"))
        assert r.status_code == 200 and r.json()["lifted_at"]
        assert client.get("/api/v1/staff/bans", headers=admin).json() == []
    with db.reading() as s:
        a = s.scalar(select(AuditEntry).where(AuditEntry.action == "ban.lift"))
        assert a.target_id == str(bans[1].id) and "急诊" in a.details["reason"]
        assert "*" * 8 in a.details["person"]


def test_checked_in_and_cancelled_bookings_are_not_no_shows(client, db, clinic):
    with time_machine.travel(f.local_dt(2026, 12, 1, 9, 0), tick=False):
        h, pid, _ = f.signup(client)
        b1 = _book_on(client, db, clinic, h, pid, date(2026, 12, 2), 0)
        b2 = _book_on(client, db, clinic, h, pid, date(2026, 12, 3), 1)
        assert client.post(f"/api/v1/appointments/{b2}/cancel", headers=h).status_code == 200
    with db.transaction() as s:
        s.get(Booking, b1).status = "checked_in"  # the visit-day feature's job; here set directly
    assert _sweep(db, f.local_dt(2026, 12, 4, 9, 0)) == (0, 0)
