"""The worker: every job idempotent, two worker processes never double-send, unpaid expiry hook."""

import os
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import time_machine
from sqlalchemy import func, select, text, update

from guahao.booking.models import Booking
from guahao.clock import UTC
from guahao.notifications.models import Notification
from guahao.schedule.models import ClinicSession
from guahao.waitlist.models import WaitlistEntry
from guahao.worker.jobs import JOBS, run_all, run_job
from tests import factories as f
from tests.clockwork_helpers import outbox

ROOT = Path(__file__).resolve().parents[2]


def _world(db, client, n_sessions=3, per_session=4):
    """n sessions on 12-03 (each with its own doctor), all booked out by distinct patients on 12-01."""
    with db.transaction() as s:
        h = f.hospital(s)
        d = f.department(s, h)
        sessions = [f.session(s, f.doctor(s, d), date(2026, 12, 3), capacity=per_session) for _ in range(n_sessions)]
        slots = [sid for cs in sessions for sid in f.slot_ids(s, cs)]
    with time_machine.travel(f.local_dt(2026, 12, 1, 10, 0), tick=False):
        for sid in slots:
            hh, pid, _ = f.signup(client)
            assert client.post("/api/v1/appointments", headers=hh, json=dict(slot_id=sid, patient_id=pid)).status_code == 201
    return len(slots)


def _counts(db):
    with db.reading() as s:
        by_kind = dict(s.execute(select(Notification.kind, func.count()).group_by(Notification.kind)).all())
        attempts = set(s.scalars(select(Notification.attempts)))
        statuses = dict(s.execute(select(Booking.status, func.count()).group_by(Booking.status)).all())
    return by_kind, attempts, statuses


def test_every_job_is_idempotent(client, db):
    n = _world(db, client)
    at = f.local_dt(2026, 12, 2, 18, 30).astimezone(UTC)
    first = run_all(db, lambda: at)
    assert first["reminders"] == n and first["booking_notices"] == n and first["dispatch"] == 2 * n
    assert all(v >= 0 for v in first.values())
    before = _counts(db)
    second = run_all(db, lambda: at + timedelta(minutes=1))
    assert second == {j.name: 0 for j in JOBS}
    assert _counts(db) == before
    # After check-in closes the sweep marks everyone once (nobody checked in), and only once.
    noon = f.local_dt(2026, 12, 3, 12, 0).astimezone(UTC)
    assert run_all(db, lambda: noon)["no_show_sweep"] == n
    assert run_all(db, lambda: noon)["no_show_sweep"] == 0
    assert _counts(db)[2] == {"no_show": n}


def _url(db) -> str:
    if db.dialect == "sqlite":
        return str(db.engine.url)
    with db.engine.connect() as c:
        schema = c.execute(text("select current_schema()")).scalar()
    url = db.engine.url.render_as_string(hide_password=False)
    return f"{url}?options=-csearch_path%3D{schema}"


def test_two_worker_processes_do_not_double_send(client, db):
    n = _world(db, client, n_sessions=4, per_session=5)
    env = {**os.environ, "GUAHAO_DATABASE_URL": _url(db), "GUAHAO_NOW": "2026-12-02T18:00:05+08:00",
           "GUAHAO_ENVIRONMENT": "test", "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "guahao.cli", "worker", "--once"]
    procs = [subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert all('"reminders": -1' not in o[0] for o in outs), outs
    by_kind, attempts, _ = _counts(db)
    assert by_kind == {"booking_confirmed": n, "reminder": n}
    assert attempts == {1}  # each message handed to the sender exactly once
    with db.reading() as s:
        keys = list(s.scalars(select(Notification.dedupe_key)))
        assert len(keys) == len(set(keys)) == 2 * n
        assert set(s.scalars(select(Notification.status))) == {"sent"}


def test_unpaid_bookings_expire_after_15_minutes_and_free_the_place(client, db):
    with db.transaction() as s:
        h = f.hospital(s)
        cs = f.session(s, f.doctor(s, f.department(s, h)), date(2026, 12, 3), capacity=1)
        sid, cs_id = f.slot_ids(s, cs)[0], cs.id
    t0 = f.local_dt(2026, 12, 1, 10, 0)
    with time_machine.travel(t0, tick=False):
        payer = f.signup(client)
        waiter = f.signup(client)
        bid = client.post("/api/v1/appointments", headers=payer[0], json=dict(slot_id=sid, patient_id=payer[1])).json()["id"]
        # Billing's prepayment state, set here by hand: the place is held while the patient pays.
        with db.transaction() as s:
            s.execute(update(Booking).where(Booking.id == bid).values(status="pending_payment"))
        assert client.post("/api/v1/waitlist", headers=waiter[0],
                           json=dict(session_id=cs_id, patient_id=waiter[1])).status_code == 201
    job = next(j for j in JOBS if j.name == "expire_unpaid")
    assert run_job(db, job, (t0 + timedelta(minutes=14, seconds=59)).astimezone(UTC)) == 0
    assert run_job(db, job, (t0 + timedelta(minutes=15)).astimezone(UTC)) == 1
    assert run_job(db, job, (t0 + timedelta(minutes=16)).astimezone(UTC)) == 0
    with db.reading() as s:
        assert s.get(Booking, bid).status == "expired"
        assert s.get(ClinicSession, cs_id).booked == 1  # freed, then taken by the waiting patient
        e = s.scalar(select(WaitlistEntry))
        assert e.status == "filled" and s.get(Booking, e.booking_id).status == "booked"
    assert [n.booking_id for n in outbox(db, "waitlist_filled")] == [e.booking_id]


def test_in_process_scheduler_runs_the_jobs(client, db):
    """`guahao serve --with-worker`: the APScheduler background thread runs every job at once on start."""
    import time

    from guahao.clock import FixedClock
    from guahao.worker.runner import start_background

    n = _world(db, client, n_sessions=1, per_session=2)
    sched = start_background(db, FixedClock(f.local_dt(2026, 12, 2, 18, 0, 30)))
    try:
        for _ in range(100):
            if len(outbox(db, "reminder")) == n:
                break
            time.sleep(0.1)
    finally:
        sched.shutdown(wait=True)
    assert len(outbox(db, "reminder")) == n
