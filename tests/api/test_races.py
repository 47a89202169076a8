"""R3 and L1 under real concurrency over HTTP, on SQLite and PostgreSQL."""

import threading
from collections import Counter
from datetime import timedelta

import httpx
from sqlalchemy import text

from guahao.accounts import service as accounts
from guahao.accounts.security import issue_token
from guahao.clock import SystemClock, local_today
from tests import factories as f
from tests.live.server import serve


def _accounts(db, n: int):
    """n accounts (distinct persons) with their tokens and self-patient ids."""
    now = SystemClock().now()
    out = []
    with db.transaction() as s:
        for _ in range(n):
            acc = accounts.register(s, now, f.phone(), "secret123", "王小明", f.id_number(n=None))
            pid = s.execute(text("SELECT id FROM patients WHERE account_id = :a"), {"a": acc.id}).scalar()
            out.append(({"Authorization": f"Bearer {issue_token(str(acc.id), 'account', now)}"}, pid))
    return out


def _race(base: str, jobs: list[tuple[dict, dict]]) -> list[httpx.Response]:
    """Fire every (headers, body) POST at once from its own thread."""
    barrier = threading.Barrier(len(jobs))
    answers: list = [None] * len(jobs)

    def run(i, headers, body):
        with httpx.Client(base_url=base, timeout=60) as c:
            barrier.wait()
            answers[i] = c.post("/api/v1/appointments", headers=headers, json=body)

    threads = [threading.Thread(target=run, args=(i, h, b)) for i, (h, b) in enumerate(jobs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return answers


def test_200_bookers_one_session_of_20(app, db):
    tomorrow = local_today(SystemClock()) + timedelta(days=1)
    with db.transaction() as s:
        doc = f.doctor(s, f.department(s, f.hospital(s)))
        cs = f.session(s, doc, tomorrow, capacity=20)
        slots, sid = f.slot_ids(s, cs), cs.id
    people = _accounts(db, 200)
    # Everyone aims at one of the first five numbers: heavy contention on slots and on the session row.
    jobs = [(h, {"slot_id": slots[i % 5 if i < 100 else i % 20], "patient_id": pid, "insurance_type": "self_pay"})
            for i, (h, pid) in enumerate(people)]
    with serve(app) as base:
        answers = _race(base, jobs)
    statuses = Counter(r.status_code for r in answers)
    codes = Counter(r.json().get("error", {}).get("code", "OK") for r in answers)
    assert not [r for r in answers if r.status_code >= 500], codes
    booked = [r.json() for r in answers if r.status_code == 201]
    assert set(codes) <= {"OK", "SESSION_FULL", "SLOT_TAKEN", "SLOT_BUSY"}, codes
    with db.engine.connect() as c:
        stored = c.execute(text("SELECT id, slot_id FROM bookings WHERE status = 'booked'")).all()
        counter = c.execute(text("SELECT booked FROM clinic_sessions WHERE id = :i"), {"i": sid}).scalar()
    assert len(stored) == counter == len({s for _, s in stored}) <= 20
    assert {b["id"] for b in booked} == {i for i, _ in stored}
    assert statuses[201] == len(stored)
    # With 200 bookers and retries impossible, the 100 spread ones alone fill whatever the hot five left.
    assert len(stored) == 20, codes
    # SLOT_BUSY is said only while another attempt has that number at the database, and none of these can
    # fail (distinct patients, room in the session): every number answered busy ended up booked.
    busy = {jobs[i][1]["slot_id"] for i, r in enumerate(answers) if r.status_code == 409
            and r.json()["error"]["code"] == "SLOT_BUSY"}
    assert busy <= {s for _, s in stored}, (busy, codes)


def test_50_attempts_of_one_patient_book_once(app, db):
    tomorrow = local_today(SystemClock()) + timedelta(days=1)
    with db.transaction() as s:
        dept = f.department(s, f.hospital(s))
        sessions = [f.session(s, f.doctor(s, dept), tomorrow, capacity=10) for _ in range(5)]
        slots = [sid for cs in sessions for sid in f.slot_ids(s, cs)]
    [(h, pid)] = _accounts(db, 1)
    jobs = [(h, {"slot_id": slots[i], "patient_id": pid, "insurance_type": "local"}) for i in range(50)]
    with serve(app) as base:
        answers = _race(base, jobs)
    codes = Counter(r.json().get("error", {}).get("code", "OK") for r in answers)
    assert codes["OK"] == 1 and set(codes) <= {"OK", "DUPLICATE_DEPARTMENT_DAY"}, codes
    with db.engine.connect() as c:
        assert c.execute(text("SELECT count(*) FROM bookings")).scalar() == 1
        assert c.execute(text("SELECT sum(booked) FROM clinic_sessions")).scalar() == 1


def test_concurrent_bookings_of_one_person_across_departments_respect_daily_and_weekly_limits(app, db):
    """L2/L3 are checked under the person's row lock: racing bookings cannot all pass the count."""
    tomorrow = local_today(SystemClock()) + timedelta(days=1)
    with db.transaction() as s:
        h = f.hospital(s)
        same_day = [f.slot_ids(s, f.session(s, f.doctor(s, f.department(s, h, f"科{i}")), tomorrow))[0]
                    for i in range(10)]
        week = [f.slot_ids(s, f.session(s, f.doctor(s, f.department(s, h, f"周{i}")),
                                        tomorrow + timedelta(days=1 + i % 5)))[0] for i in range(10)]
    [(hd, pid)] = _accounts(db, 1)
    with serve(app) as base:
        day_answers = _race(base, [(hd, {"slot_id": sid, "patient_id": pid}) for sid in same_day])
        week_answers = _race(base, [(hd, {"slot_id": sid, "patient_id": pid}) for sid in week])
    day_codes = Counter(r.json().get("error", {}).get("code", "OK") for r in day_answers)
    assert day_codes["OK"] == 2 and set(day_codes) == {"OK", "DAILY_LIMIT"}, day_codes
    week_codes = Counter(r.json().get("error", {}).get("code", "OK") for r in week_answers)
    assert week_codes["OK"] == 1, week_codes  # 2 already booked tomorrow, 3 per 7 days
    with db.engine.connect() as c:
        assert c.execute(text("SELECT count(*) FROM bookings WHERE status = 'booked'")).scalar() == 3
