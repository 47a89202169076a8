"""guahao serve's protocol carries a booking attempt the database decides by callbacks (release/direct.py):
the same answers as the usual way, without an ASGI task, on PostgreSQL with the bookings' thread."""

import asyncio
import json
from datetime import date

import pytest
import time_machine
from sqlalchemy import text

from guahao import serving
from guahao.security.ratelimit import RateLimiter
from tests import factories as f
from tests.api.test_inline_answers import _answers, booking, request
from tests.recording_transport import connect

pytestmark = [pytest.mark.postgres,
              pytest.mark.skipif(serving.http_protocol() == "auto", reason="uvicorn without httptools")]
NOW = f.local_dt(2026, 12, 1, 10, 0)
D1 = date(2026, 12, 2)


@pytest.fixture
def db(postgres_db):
    return postgres_db


@pytest.fixture
def world(app, client, db):
    """Three numbers; three logged-in patients whose persons the worker knows (read ahead at the refresh).
    The test runs inside the fixture's travel: the gate's times must not go back."""
    with time_machine.travel(NOW):
        with db.transaction() as s:
            h = f.hospital(s)
            doc = f.doctor(s, f.department(s, h, "心血管内科"))
            slots = f.slot_ids(s, f.session(s, doc, D1, "AM", capacity=3))
        people = []
        for _ in range(3):
            headers, pid, _ = f.signup(client)
            with db.reading() as s:
                account, person = s.execute(text("SELECT account_id, person_id FROM patients WHERE id = :p"),
                                            dict(p=pid)).one()
            app.state.person_of = getattr(app.state, "person_of", None) or {}
            app.state.person_of[(account, pid)] = person
            people.append(dict(headers=headers, patient=pid))
        yield dict(slots=slots, people=people)


def serve(app, *chunks: bytes, answers: int = 1):
    """Feed `chunks` to one connection of guahao serve's protocol on a loop where the bookings' thread is
    open: (writes made while they were being received, all answers written, whole; the connection's ASGI
    cycle — None when no request went the usual way)."""
    from uvicorn.server import ServerState

    async def run():
        await app.state.pg_bookings.open()  # on this loop: the direct path is possible here
        state = ServerState()
        state.default_headers = [(b"date", b"Tue, 01 Dec 2026 02:00:00 GMT"), (b"server", b"uvicorn")]
        proto, t = connect(app, serving.http_protocol(), state)
        for chunk in chunks:
            proto.data_received(chunk)
        at_once = list(t.writes)
        for _ in range(500):
            if len(_answers(b"".join(t.writes))) >= answers and not state.tasks:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.02)  # the turn's give-back task
        return at_once, _answers(b"".join(t.writes)), proto.cycle
    return asyncio.run(run())  # inside the world's travel


def _booked(db) -> int:
    with db.reading() as s:
        return s.execute(text("SELECT count(*) FROM bookings")).scalar()


def _headers(answer: bytes) -> list[bytes]:
    head = answer.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
    return sorted(line.split(b":")[0].lower() for line in head[1:] if not line.lower().startswith(b"content-length"))


def test_a_booking_is_answered_without_a_task_as_the_usual_way_answers_it(app, db, world):
    a, b = world["people"][:2]
    at_once, answers, cycle = serve(app, booking(a["headers"], world["slots"][0], a["patient"]))
    assert at_once == [] and cycle is None  # answered later, and not by an ASGI task
    assert len(answers) == 1 and answers[0].startswith(b"HTTP/1.1 201 ")
    assert app.state.gate.refusal(world["slots"][0], NOW).code == "SLOT_TAKEN"  # the gate learned it
    app.state.inline.direct = False
    _, usual, usual_cycle = serve(app, booking(b["headers"], world["slots"][1], b["patient"]))
    assert usual_cycle is not None and usual[0].startswith(b"HTTP/1.1 201 ")
    assert _headers(answers[0]) == _headers(usual[0])
    mine, theirs = (json.loads(x.split(b"\r\n\r\n", 1)[1]) for x in (answers[0], usual[0]))
    assert mine.keys() == theirs.keys() and mine["patient"]["id"] == a["patient"]
    assert _booked(db) == 2


def test_a_number_the_database_refuses_is_answered_and_learned(app, db, world):
    a, b = world["people"][:2]
    slot = world["slots"][0]
    assert serve(app, booking(a["headers"], slot, a["patient"]))[1][0].startswith(b"HTTP/1.1 201 ")
    app.state.gate.forget_all()  # as the other worker's gate, which has not heard yet
    at_once, answers, cycle = serve(app, booking(b["headers"], slot, b["patient"]))
    assert at_once == [] and cycle is None
    assert answers[0].startswith(b"HTTP/1.1 409 ") and b'"SLOT_TAKEN"' in answers[0]
    assert app.state.gate.refusal(slot, NOW).code == "SLOT_TAKEN"
    assert _booked(db) == 1


def test_the_rate_limit_is_counted_once_and_answers_429(app, db, world):
    app.state.limiter = RateLimiter(None, enabled=True)  # process memory: answered at once
    app.state.settings = app.state.settings.model_copy(update={"rate_booking_account": "1/60"})
    a = world["people"][0]
    first = serve(app, booking(a["headers"], world["slots"][0], a["patient"]))
    second = serve(app, booking(a["headers"], world["slots"][1], a["patient"]))
    assert first[1][0].startswith(b"HTTP/1.1 201 ")
    assert second[0] and second[0][0].startswith(b"HTTP/1.1 429 ") and b"retry-after" in second[0][0].lower()
    assert _booked(db) == 1


def test_what_arrives_while_an_answer_is_under_way_is_read_after_it(app, db, world):
    a = world["people"][0]
    health = request("GET", "/healthz", {})
    at_once, answers, _ = serve(app, booking(a["headers"], world["slots"][0], a["patient"]), health, answers=2)
    assert at_once == []
    assert [x.split(b"\r\n", 1)[0] for x in answers] == [b"HTTP/1.1 201 Created", b"HTTP/1.1 200 OK"]


def test_a_patient_the_worker_has_not_met_is_booked_directly_with_the_person_read_and_counted(app, db, world):
    """No refresh with this patient's token came to this worker: the person is read first (one batched
    look-up), remembered, and counted under the per-person limit (here 1: the next attempt is 429)."""
    app.state.limiter = RateLimiter(None, enabled=True)
    app.state.settings = app.state.settings.model_copy(update={"rate_booking_person": "1/60"})
    app.state.person_of = {}
    a = world["people"][0]
    at_once, answers, cycle = serve(app, booking(a["headers"], world["slots"][0], a["patient"]))
    assert at_once == [] and cycle is None  # carried by Direct, not the usual way
    assert answers[0].startswith(b"HTTP/1.1 201 ")
    with db.reading() as s:
        account, person = s.execute(text("SELECT account_id, person_id FROM patients WHERE id = :p"),
                                    dict(p=a["patient"])).one()
    assert app.state.person_of[(account, a["patient"])] == person
    again = serve(app, booking(a["headers"], world["slots"][1], a["patient"]))
    assert again[1][0].startswith(b"HTTP/1.1 429 ")
    assert _booked(db) == 1


def test_another_accounts_patient_is_refused_directly_as_the_usual_way_refuses_it(app, db, world):
    a, b = world["people"][:2]
    app.state.person_of = {}
    at_once, answers, cycle = serve(app, booking(a["headers"], world["slots"][0], b["patient"]))
    assert cycle is None and answers[0].startswith(b"HTTP/1.1 404 ")
    app.state.inline.direct = False
    _, usual, usual_cycle = serve(app, booking(a["headers"], world["slots"][0], b["patient"]))
    assert usual_cycle is not None
    assert usual[0].split(b"\r\n\r\n", 1)[1] == answers[0].split(b"\r\n\r\n", 1)[1]
    assert _booked(db) == 0
