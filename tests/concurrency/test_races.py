"""Races through the real HTTP stack (live uvicorn, many simultaneous clients), on SQLite and PostgreSQL.

R3: a session never sells more than its capacity and a number is never held twice; L1: one person, one
booking per department and day, however many attempts race; every loser gets a 409 with a code, never 5xx.
"""

import asyncio
from collections import Counter
from datetime import datetime, timedelta, timezone

import aiohttp

from bench import scenario as burst
from guahao.clock import local

NOW = datetime.now(timezone.utc)


def _world(db, patients, sessions, per_session):
    sc = burst.Scenario(patients=patients, sessions=sessions, per_session=per_session)
    # Released an hour ago, for a visit in three days: bookable now (R1, R2).
    return sc, burst.seed(db, sc, local(NOW).date() + timedelta(days=3), NOW - timedelta(hours=1), NOW)


async def _race(url, attempts):
    """Fire every (token, slot id, patient id) attempt at once; returns (status, code) per attempt."""
    async with aiohttp.ClientSession(url, connector=aiohttp.TCPConnector(limit=len(attempts))) as http:
        start = asyncio.Event()

        async def one(token, slot_id, patient_id):
            await start.wait()
            async with http.post("/api/v1/appointments", headers={"Authorization": f"Bearer {token}"},
                                 json=dict(slot_id=slot_id, patient_id=patient_id)) as r:
                body = await r.json(content_type=None)
                return r.status, (body.get("error") or {}).get("code") or body.get("id")
        tasks = [asyncio.create_task(one(*a)) for a in attempts]
        await asyncio.sleep(0.2)
        start.set()
        return await asyncio.gather(*tasks)


def _active(db, session_ids):
    from sqlalchemy import select

    from guahao.booking.models import ACTIVE_STATUSES, Booking
    from guahao.schedule.models import ClinicSession

    with db.reading() as s:
        rows = s.execute(select(Booking.slot_id, Booking.person_id).where(
            Booking.session_id.in_(session_ids), Booking.status.in_(ACTIVE_STATUSES))).all()
        booked = s.scalars(select(ClinicSession.booked).where(ClinicSession.id.in_(session_ids))).all()
    return rows, booked


def test_200_bookers_one_session_of_20(db, live_server):
    sc, world = _world(db, patients=200, sessions=1, per_session=20)
    tokens = asyncio.run(burst.login_all(live_server.url, world))
    slots = world.slots[world.session_ids[0]]
    # Everybody wants one of the first five numbers or any other: hot numbers and a full session both race.
    attempts = [(tok, slots[i % 5] if i % 2 else slots[(i // 2) % 20], pid)
                for i, (tok, (_, pid, _)) in enumerate(zip(tokens, world.patients))]
    answers = asyncio.run(_race(live_server.url, attempts))
    statuses = Counter(st for st, _ in answers)
    codes = Counter(code for st, code in answers if st != 201)
    assert statuses[201] == 20, answers
    assert set(statuses) <= {201, 409} and set(codes) <= {"SESSION_FULL", "SLOT_TAKEN", "SLOT_BUSY"}, (statuses, codes)
    rows, booked = _active(db, world.session_ids)
    assert len(rows) == 20 and len({r.slot_id for r in rows}) == 20 and booked == [20]
    assert {code for st, code in answers if st == 201} == set(_booking_ids(db, world.session_ids))


def test_one_patient_50_attempts_books_once(db, live_server):
    sc, world = _world(db, patients=1, sessions=1, per_session=50)
    token = asyncio.run(burst.login_all(live_server.url, world))[0]
    pid = world.patients[0][1]
    answers = asyncio.run(_race(live_server.url, [(token, s, pid) for s in world.slots[world.session_ids[0]]]))
    statuses = Counter(st for st, _ in answers)
    assert statuses[201] == 1 and statuses[409] == 49, answers
    assert {code for st, code in answers if st == 409} == {"DUPLICATE_DEPARTMENT_DAY"}
    rows, booked = _active(db, world.session_ids)
    assert len(rows) == 1 and booked == [1]


def _booking_ids(db, session_ids):
    from sqlalchemy import select

    from guahao.booking.models import ACTIVE_STATUSES, Booking

    with db.reading() as s:
        return s.scalars(select(Booking.id).where(Booking.session_id.in_(session_ids),
                                                  Booking.status.in_(ACTIVE_STATUSES))).all()
