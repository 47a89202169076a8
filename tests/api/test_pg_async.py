"""The event-loop booking path on PostgreSQL (guahao/booking/pg_async.py) answers exactly as the repository does.

Its statements are written out in SQL: these tests compare them, answer for answer, with the repository's
SQLAlchemy statements on the same rows, and check its connection pool (rest pings, broken connections,
cancelled bookings). Booking through the API on PostgreSQL runs this path in every other API test too.
"""

import asyncio
from datetime import date, datetime, timedelta

import psycopg
import pytest
import time_machine
from sqlalchemy import text

from guahao.accounts.models import Ban, VisitCard
from guahao.booking import repository as repo
from guahao.booking import rules as brules
from guahao.booking import service
from guahao.booking.pg_async import BookingStore, Bookings, array_literal, prepare
from guahao.booking.pg_async import run_steps as run_async
from guahao.catalog.models import Hospital
from guahao.clock import local
from guahao.errors import DomainError, api_error
from guahao.security.guards import known_person_of
from tests import factories as f
from tests.held import behind_open_transaction

pytestmark = pytest.mark.postgres
NOW = f.local_dt(2026, 12, 1, 10, 0)
D1 = date(2026, 12, 2)


@pytest.fixture
def db(postgres_db):
    """PostgreSQL only, for the conftest's `app` and `client` too: the path is PostgreSQL's own."""
    return postgres_db


@pytest.fixture
def pg(db):
    return db


@pytest.fixture
def world(pg, client):
    with pg.transaction() as s:
        h = f.hospital(s)
        d = f.department(s, h)
        doc = f.doctor(s, d)
        sessions = [f.session(s, doc, D1, "AM", capacity=3), f.session(s, doc, D1 + timedelta(days=1), "PM")]
        slots = [f.slot_ids(s, cs) for cs in sessions]
    people = []
    for _ in range(3):
        _, pid, _ = f.signup(client)
        with pg.reading() as s:
            aid, person = s.execute(text("SELECT account_id, person_id FROM patients WHERE id = :p"),
                                    dict(p=pid)).one()
        people.append(dict(account=aid, patient=pid, person=person))
    return dict(h=h.id, sessions=[cs.id for cs in sessions], slots=slots, people=people)


def _bookings(pg, size=2, **kw) -> Bookings:
    return Bookings(pg.pg_conninfo, size, pg.pg_connect_args, **kw)


async def _connect(pg):
    c = await psycopg.AsyncConnection.connect(pg.pg_conninfo, autocommit=True, **pg.pg_connect_args)
    await prepare(c)  # as the pool's `configure` does
    return c


async def _on_conn(pg, work):
    """A store's first step begins the transaction; rolled back whatever it did."""
    async with await _connect(pg) as c:
        try:
            return await work(BookingStore(c))
        finally:
            await c.rollback()


def _via_repository(pg, steps):
    with pg.sessions() as s:
        try:
            return service.run_steps(steps, repo.BookingStore(s))
        finally:
            s.rollback()


def _outcome(run):
    try:
        view = run()
    except DomainError as e:
        return ("refused", e.code), None
    b = vars(view.Booking).copy()
    booking_id = b.pop("id")
    b.pop("serial_number")
    return ("booked", b, {k: getattr(view, k) for k in (*service.VIEW_NAMES, "places_left")}), booking_id


async def _book_on_loop(pg, steps, person_ahead=None):
    """As Bookings.book does, on a connection of its own."""
    async with await _connect(pg) as c:
        try:
            return await run_async(steps, BookingStore(c, person_ahead=person_ahead))
        finally:
            await c.rollback()


def _undo(pg, booking_id: int) -> None:
    """The event-loop path commits a booking it makes: take it back, so both stores start from one state."""
    with pg.transaction() as s:
        sid = s.execute(text("DELETE FROM bookings WHERE id = :b RETURNING session_id"), dict(b=booking_id)).scalar()
        s.execute(text("UPDATE clinic_sessions SET booked = booked - 1 WHERE id = :s"), dict(s=sid))


def _both(pg, now, account, slot, patient):
    """The repository's answer and the event loop's; the latter also with the person locked ahead (the
    right one, another one, one that does not exist), which must not change it."""
    def steps():
        return service.booking_steps(now, account, slot, patient, "local")
    sync, _ = _outcome(lambda: _via_repository(pg, steps()))
    with pg.reading() as s:
        person = s.execute(text("SELECT person_id FROM patients WHERE id = :p"), dict(p=patient)).scalar()
        other = s.execute(text("SELECT min(id) FROM persons WHERE id <> :p"), dict(p=person)).scalar()
    span = brules.limit_span(brules.LimitPolicy())
    outcomes = set()
    for guess in (None, person, other, 10**9):
        ahead = None if guess is None else (guess, local(now).date(), span)
        on_loop, booking_id = _outcome(lambda: asyncio.run(_book_on_loop(pg, steps(), ahead)))
        if booking_id is not None:
            _undo(pg, booking_id)
        outcomes.add(repr(on_loop))
    assert len(outcomes) == 1, outcomes
    return sync, on_loop


def test_slot_rows_are_the_same_through_both_stores(pg, world):
    me, other = world["people"][0], world["people"][1]
    cases = [(world["slots"][0][0], me["account"], me["patient"]),  # my patient
             (world["slots"][0][1], me["account"], other["patient"]),  # not my patient: patient_pk is None
             (world["slots"][1][0], other["account"], other["patient"]),
             (99_999_999, me["account"], me["patient"])]  # no such slot
    for slot, account, patient in cases:
        with pg.reading() as s:
            sync = repo.slot_for_booking(s, slot, account, patient)
        on_loop = asyncio.run(_on_conn(pg, lambda st: st.slot_for_booking(slot, account, patient)))
        assert (sync is None) == (on_loop is None)
        if sync is not None:
            assert on_loop._asdict() == sync._asdict()
            assert on_loop.release_at.tzinfo is not None


def test_every_answer_is_the_same_through_both_stores(pg, world, client):
    a, b, c = world["people"]
    s0, s1 = world["slots"]
    sync, on_loop = _both(pg, NOW, a["account"], s0[0], a["patient"])
    assert sync == on_loop and sync[0] == "booked" and sync[2]["places_left"] == 2
    with pg.transaction() as s:
        s.add(Ban(person_id=b["person"], starts_on=NOW.date(), ends_on=NOW.date() + timedelta(days=90),
                  reason="test", created_at=NOW))
    with pg.transaction() as s:
        service.book(s, NOW, a["account"], s0[0], a["patient"], "local")
    cases = {
        "SLOT_TAKEN": (NOW, c["account"], s0[0], c["patient"]),
        "DUPLICATE_DEPARTMENT_DAY": (NOW, a["account"], s0[1], a["patient"]),
        "BLACKLISTED": (NOW, b["account"], s0[2], b["patient"]),
        "NOT_FOUND": (NOW, a["account"], s0[2], c["patient"]),
        "NOT_RELEASED": (NOW - timedelta(days=30), c["account"], s1[0], c["patient"]),
    }
    for code, args in cases.items():
        sync, on_loop = _both(pg, *args)
        assert sync == on_loop == ("refused", code), (code, sync, on_loop)
    # Booked: the same booking, names and places left either way.
    sync, on_loop = _both(pg, NOW, c["account"], s0[1], c["patient"])
    assert sync == on_loop and sync[0] == "booked" and sync[2]["places_left"] == 1
    # A visit card the hospital asks for: refused the same way, then booked once it is on file.
    with pg.transaction() as s:
        s.get(Hospital, world["h"]).requires_visit_card = True
    assert _both(pg, NOW, c["account"], s0[1], c["patient"]) == (("refused", "VISIT_CARD_REQUIRED"),) * 2
    with pg.transaction() as s:
        s.add(VisitCard(patient_id=c["patient"], hospital_id=world["h"], card_number="A1", created_at=NOW))
    sync, on_loop = _both(pg, NOW, c["account"], s0[1], c["patient"])
    assert sync == on_loop and sync[0] == "booked"
    # The last places taken meanwhile: SESSION_FULL either way.
    with pg.transaction() as s:
        s.execute(text("UPDATE clinic_sessions SET booked = capacity WHERE id = :i"), dict(i=world["sessions"][0]))
    assert _both(pg, NOW, c["account"], s0[1], c["patient"]) == (("refused", "SESSION_FULL"),) * 2


def test_a_unique_index_refusal_is_the_same_domain_error(pg, world):
    a, c = world["people"][0], world["people"][2]
    with pg.transaction() as s:
        view = service.book_with_view(s, NOW, a["account"], world["slots"][0][0],
                                      a["patient"], "local")
    values = {k: v for k, v in vars(view.Booking).items() if k not in ("id", "cancelled_at", "cancel_reason")}
    values.update(serial_number="X" + values["serial_number"][1:], patient_id=c["patient"], person_id=c["person"])

    async def insert(store):
        await store.book_place(values)
    with pytest.raises(DomainError) as e:
        asyncio.run(_on_conn(pg, insert))
    assert e.value.code == "SLOT_TAKEN"


def _record_bookings(app) -> list:
    """The keyword arguments of each booking the app hands to its PostgreSQL path, in order."""
    calls = []
    original = app.state.pg_bookings.book

    async def recorded(*args, **kw):
        calls.append(kw)
        return await original(*args, **kw)
    app.state.pg_bookings.book = recorded
    return calls


def test_the_app_books_on_the_loop_and_answers_as_a_later_read(pg, world, client, app):
    assert app.state.pg_bookings is not None
    calls = _record_bookings(app)
    with time_machine.travel(NOW, tick=False):
        h, pid, _ = f.signup(client)
        r = client.post("/api/v1/appointments", headers=h, json=dict(slot_id=world["slots"][0][2], patient_id=pid))
        assert r.status_code == 201, r.text
        assert client.get(f"/api/v1/appointments/{r.json()['id']}", headers=h).json() == r.json()
        again = client.post("/api/v1/appointments", headers=h, json=dict(slot_id=world["slots"][0][2],
                                                                       patient_id=pid))
    assert len(calls) == 1  # the second attempt is refused by the gate, which the first booking taught
    assert again.status_code == 409 and again.json()["error"]["code"] == "SLOT_TAKEN"


def test_a_patient_the_process_has_not_met_books_with_the_person_read_first(pg, world, client, app):
    """The person behind a first-timer's patient is read (in a batch of look-ups) before the transaction,
    so the booking can share a batch (booking/batch.py takes only known persons) and owes no limit inside
    it; a patient of another account is not read as anyone's and is refused as before."""
    calls = _record_bookings(app)
    with time_machine.travel(NOW, tick=False):
        h, pid, _ = f.signup(client)
        other_h, _, _ = f.signup(client)
        with pg.reading() as s:
            account, person = s.execute(text("SELECT account_id, person_id FROM patients WHERE id = :p"),
                                        dict(p=pid)).one()
        assert known_person_of(app.state, account, pid) is None
        r = client.post("/api/v1/appointments", headers=h, json=dict(slot_id=world["slots"][0][2], patient_id=pid))
        foreign = client.post("/api/v1/appointments", headers=other_h,
                              json=dict(slot_id=world["slots"][1][2], patient_id=pid))
    assert r.status_code == 201, r.text
    assert r.json()["patient"]["id"] == pid
    assert calls[0]["person_id"] == person and calls[0]["on_person"] is None
    assert known_person_of(app.state, account, pid) == person
    assert foreign.status_code == 404, foreign.text
    assert calls[1]["person_id"] is None


def test_a_first_timers_booking_on_the_loop_counts_the_per_person_limit_before_it_books(pg, world):
    """One person under two accounts (A3): the first account's booking, read as a first-timer, spends the
    person's budget of one, so the second account's attempt for the same person is 429, not a booking."""
    from fastapi.testclient import TestClient

    from guahao.app import create_app
    from guahao.clock import SystemClock
    from tests.security.conftest import limited_settings

    app = create_app(limited_settings(rate_booking_person="1/60"), db=pg, clock=SystemClock())
    with TestClient(app, raise_server_exceptions=False) as c, time_machine.travel(NOW, tick=False):
        assert app.state.pg_bookings is not None and app.state.limiter.enabled
        idn = f.id_number()
        farm = []
        for _ in range(2):
            h, _, _ = f.signup(c)
            pid = c.post("/api/v1/patients", headers=h, json=dict(
                name="赵六", id_number=idn, phone=f.phone(), relation="其他")).json()["id"]
            farm.append((h, pid))
        first = c.post("/api/v1/appointments", headers=farm[0][0],
                       json=dict(slot_id=world["slots"][0][0], patient_id=farm[0][1]))
        second = c.post("/api/v1/appointments", headers=farm[1][0],
                        json=dict(slot_id=world["slots"][1][0], patient_id=farm[1][1]))
    assert first.status_code == 201, first.text
    assert second.status_code == 429, second.text


async def _pid_of(bookings: Bookings) -> int:
    await bookings.open()
    async with bookings.pool().connection() as c:
        return (await (await c.execute("SELECT pg_backend_pid()")).fetchone())[0]


def test_a_connection_killed_while_it_rested_is_replaced_before_use(pg):
    async def run():
        bookings = _bookings(pg, size=1)
        try:
            first = await _pid_of(bookings)
            async with await psycopg.AsyncConnection.connect(pg.pg_conninfo, autocommit=True) as admin:
                assert (await (await admin.execute("SELECT pg_terminate_backend(%s)", (first,))).fetchone())[0]
            await asyncio.sleep(1.2)  # rested past the bound: pinged on checkout, found dead, replaced
            assert await _pid_of(bookings) != first
        finally:
            await bookings.close()
    asyncio.run(run())


def test_a_busy_connection_is_not_pinged(pg):
    async def run():
        bookings = _bookings(pg, size=1)
        pings = []
        ping = bookings.ping
        bookings.ping = lambda conn: pings.append(conn.pgconn.backend_pid) or ping(conn)
        try:
            first = await _pid_of(bookings)  # a fresh connection: pinged once
            for _ in range(5):
                assert await _pid_of(bookings) == first  # back to back: not pinged
            assert pings == [first]
            await asyncio.sleep(1.2)
            assert await _pid_of(bookings) == first
            assert pings == [first, first]  # after a rest: one ping, on the same live connection
        finally:
            await bookings.close()
    asyncio.run(run())


@pytest.mark.parametrize("in_thread", [False, True], ids=["on the caller's loop", "on a thread of its own"])
def test_a_cancelled_booking_leaves_no_lock_behind(pg, world, in_thread):
    """A client gone mid-transaction: the connection goes back rolled back, the next booking of the same
    session (whose row the cancelled one may have locked) goes through on the same one-connection pool.
    On a thread of its own (booking/dbthread.py) the caller's cancellation reaches the transaction there."""
    from guahao.booking.dbthread import BookingsInThread

    a, b = world["people"][0], world["people"][1]

    async def run():
        bookings = BookingsInThread(_bookings(pg, size=1)) if in_thread else _bookings(pg, size=1)
        await bookings.open()
        try:
            async def slow_person(person_id):
                await asyncio.sleep(10)  # inside the transaction, after the slot was read
            task = asyncio.create_task(bookings.book(NOW, a["account"], world["slots"][0][0], a["patient"],
                                                     "local", on_person=slow_person))
            await asyncio.sleep(0.3)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            view = await asyncio.wait_for(
                bookings.book(NOW, b["account"], world["slots"][0][0], b["patient"], "local"), 5)
            return view
        finally:
            await bookings.close()
    view = asyncio.run(run())
    assert view.Booking.patient_id == b["patient"] and view.places_left == 2


def test_a_pool_with_every_connection_busy_too_long_answers_503(pg):
    """SQLAlchemy's pool gives up waiting for a connection with its own TimeoutError, not a driver error:
    the database is busy, not the request wrong — 503 with Retry-After, as for a database that is away."""
    from sqlalchemy import create_engine

    engine = create_engine(pg.url, pool_size=1, max_overflow=0, pool_timeout=0.1)
    try:
        with engine.connect():
            with pytest.raises(Exception) as e:
                engine.connect()
    finally:
        engine.dispose()
    r = api_error(e.value)
    assert r.status_code == 503 and b"SERVICE_UNAVAILABLE" in r.body and "Retry-After" in r.headers


def test_an_unreachable_database_answers_503(pg):
    async def run():
        bookings = Bookings("postgresql://postgres@127.0.0.1:1/test", 1, timeout=0.5)
        try:
            with pytest.raises(Exception) as e:
                await bookings.book(NOW, 1, 1, 1, "local")
            return e.value
        finally:
            await bookings.close()
    error = asyncio.run(run())
    r = api_error(error)
    assert r.status_code == 503 and b"SERVICE_UNAVAILABLE" in r.body and "Retry-After" in r.headers


def _book_on_loop_changed_after_read(pg, world, change) -> None:
    """The first person books the first session's first number on the event loop; `change(person_id)`
    runs once the slot was read (as `on_person`), behind the booking's back."""
    a = world["people"][0]

    async def person_known(person_id):
        change(person_id)

    async def run():
        bookings = _bookings(pg, size=1)
        try:
            await bookings.book(NOW, a["account"], world["slots"][0][0], a["patient"], "local",
                                on_person=person_known)
        finally:
            await bookings.close()
    asyncio.run(run())


def _set_session(pg, sid: int, assignment: str) -> None:
    with pg.transaction() as s:
        s.execute(text(f"UPDATE clinic_sessions SET {assignment} WHERE id = :i"), dict(i=sid))


def test_no_place_left_at_the_last_step_books_nothing(pg, world):
    """The pre-check read a place, but the session filled meanwhile: the conditional update takes none,
    no booking row is written, and the answer is SESSION_FULL."""
    a = world["people"][0]
    sid = world["sessions"][0]
    full_after_read = []

    def fill(person_id):
        _set_session(pg, sid, "booked = capacity")
        full_after_read.append(person_id)
    with pytest.raises(DomainError) as e:
        _book_on_loop_changed_after_read(pg, world, fill)
    assert e.value.code == "SESSION_FULL" and full_after_read == [a["person"]]
    with pg.reading() as s:
        assert s.execute(text("SELECT count(*) FROM bookings")).scalar() == 0
        assert s.execute(text("SELECT booked, capacity FROM clinic_sessions WHERE id = :i"),
                         dict(i=sid)).one() == (3, 3)


@pytest.mark.parametrize("how", ["event loop", "repository"])
def test_a_session_stopped_after_its_slot_was_read_is_answered_stopped_not_full(pg, world, how):
    """Staff stop the session while a booking of it is under way: the write takes no place, and the answer
    says why (SESSION_STOPPED), the same through both stores; no booking row, the counter untouched."""
    a = world["people"][0]
    sid = world["sessions"][0]

    def stop(person_id):  # runs after the slot was read
        _set_session(pg, sid, "status = 'stopped'")

    def through_repository():
        with pg.transaction() as s:
            service.book_with_view(s, NOW, a["account"], world["slots"][0][0], a["patient"], "local",
                                   on_person=stop)
    with pytest.raises(DomainError) as e:
        _book_on_loop_changed_after_read(pg, world, stop) if how == "event loop" else through_repository()
    assert e.value.code == "SESSION_STOPPED"
    with pg.reading() as s:
        assert s.execute(text("SELECT count(*) FROM bookings")).scalar() == 0
        assert s.execute(text("SELECT booked, status FROM clinic_sessions WHERE id = :i"),
                         dict(i=sid)).one() == (0, "stopped")


@pytest.mark.parametrize("change, answer", [("booked = capacity", "SESSION_FULL"),
                                             ("status = 'stopped'", "SESSION_STOPPED")])
def test_a_row_written_before_the_session_filled_or_stopped_is_taken_out_again(pg, world, change, answer):
    """The booking's row goes in before its session is locked (BOOK_PLACE): while another transaction holds
    the session, uncommitted, the row is written on the session as last committed (a place left) and the
    booking waits for the session; that transaction then commits the session full, or stopped. The row is
    deleted, the answer says why, and the counter is only the other transaction's."""
    a = world["people"][0]
    sid = world["sessions"][0]

    def hold(s):
        s.execute(text(f"UPDATE clinic_sessions SET {change} WHERE id = :i"), dict(i=sid))

    async def run(release):
        bookings = _bookings(pg, size=1)
        try:
            booking = asyncio.ensure_future(
                bookings.book(NOW, a["account"], world["slots"][0][0], a["patient"], "local"))
            await asyncio.sleep(0.5)
            assert not booking.done()
            with pg.reading() as s:  # its row written (the table's write lock held), waiting for the session
                assert s.execute(text(
                    "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                    "WHERE l.relation = 'bookings'::regclass AND l.mode = 'RowExclusiveLock' "
                    "AND a.wait_event_type = 'Lock'")).scalar() == 1
            release.set()
            with pytest.raises(DomainError) as e:
                await booking
            return e.value.code
        finally:
            await bookings.close()
    assert behind_open_transaction(pg, hold, run) == answer
    with pg.reading() as s:
        assert s.execute(text("SELECT count(*) FROM bookings")).scalar() == 0
        booked, capacity, status = s.execute(text(
            "SELECT booked, capacity, status FROM clinic_sessions WHERE id = :i"), dict(i=sid)).one()
    assert booked == (capacity if answer == "SESSION_FULL" else 0)


def _statements_sent(monkeypatch) -> list[str]:
    """Every message the event-loop path sends from now on, in order (one per round trip)."""
    sent = []
    execute = psycopg.AsyncClientCursor.execute

    async def counted(self, query, params=None, **kw):
        sent.append(query)
        return await execute(self, query, params, **kw)
    monkeypatch.setattr(psycopg.AsyncClientCursor, "execute", counted)
    return sent


def test_a_booking_is_three_round_trips_of_statements_prepared_once_per_connection(pg, world, monkeypatch):
    sent = _statements_sent(monkeypatch)
    a, b = world["people"][0], world["people"][1]

    async def run():
        bookings = _bookings(pg, size=1)
        try:
            first = await bookings.book(NOW, a["account"], world["slots"][0][0], a["patient"], "local")
            second = await bookings.book(NOW, b["account"], world["slots"][0][1], b["patient"], "local")
            return first, second
        finally:
            await bookings.close()
    first, second = asyncio.run(run())
    assert (first.places_left, second.places_left) == (2, 1)
    assert sum(q.startswith("PREPARE") for q in sent) == 1  # one connection, prepared once
    booking = [q for q in sent if not q.startswith("PREPARE")]
    assert len(booking) == 6  # three round trips each
    assert booking[0].startswith("BEGIN; EXECUTE guahao_slot_for_booking(")
    assert booking[1].startswith("EXECUTE guahao_lock_person(") and "EXECUTE guahao_visits_near(" in booking[1]
    # The row first, then its session locked for the place only (see BOOK_PLACE).
    assert booking[2].startswith("EXECUTE guahao_insert_one(") and booking[2].rstrip().endswith("COMMIT")
    assert booking[2].index("guahao_lock_sessions(") < booking[2].index("guahao_settle(")
    assert booking[3:] == booking[:3]


def test_the_persons_lock_taken_with_the_slot_answers_as_its_own_round_trip(pg, world):
    """Visits read from today on (with the slot, before its date is known), then picked out around the
    visit date, are exactly the visits read around it under the lock."""
    c = world["people"][2]
    with pg.transaction() as s:
        doc_id = s.execute(text("SELECT doctor_id FROM clinic_sessions WHERE id = :i"),
                           dict(i=world["sessions"][0])).scalar()
        from guahao.catalog.models import Doctor

        doc = s.get(Doctor, doc_id)
        near, far = f.session(s, doc, D1 + timedelta(days=3)), f.session(s, doc, D1 + timedelta(days=95))
        near_slot, far_slot = f.slot_ids(s, near)[0], f.slot_ids(s, far)[0]
    with pg.transaction() as s:
        service.book(s, NOW, c["account"], near_slot, c["patient"], "local")
        service.book(s, NOW + timedelta(days=93), c["account"], far_slot, c["patient"], "local")
    span = brules.limit_span(brules.LimitPolicy())
    today = local(NOW).date()

    async def answers(ahead):
        async def work(store):
            store.person_ahead = ahead
            row = await store.slot_for_booking(world["slots"][0][0], c["account"], c["patient"])
            return await store.lock_person(row.person_id, today, row.visit_date, span)
        return await _on_conn(pg, work)
    plain = asyncio.run(answers(None))
    assert sorted(v[2] for v in plain[1]) == [D1 + timedelta(days=3)]  # the far visit is beyond the span
    assert asyncio.run(answers((c["person"], today, span))) == plain


def test_a_booking_of_a_known_person_is_two_round_trips(pg, world, monkeypatch):
    sent = _statements_sent(monkeypatch)
    a = world["people"][0]

    async def run():
        bookings = _bookings(pg, size=1)
        try:
            return await bookings.book(NOW, a["account"], world["slots"][0][0], a["patient"], "local",
                                       person_id=a["person"])
        finally:
            await bookings.close()
    view = asyncio.run(run())
    assert view.places_left == 2 and view.Booking.person_id == a["person"]
    booking = [q for q in sent if not q.startswith("PREPARE")]
    assert len(booking) == 2
    assert booking[0].startswith("BEGIN; EXECUTE guahao_slot_for_booking(")
    assert "EXECUTE guahao_lock_person(" in booking[0] and "EXECUTE guahao_visits_near(" in booking[0]
    assert booking[1].startswith("EXECUTE guahao_insert_one(") and booking[1].rstrip().endswith("COMMIT")


def test_on_a_thread_of_its_own_a_booking_commits_while_the_server_loop_is_busy(pg, world):
    """guahao/booking/dbthread.py: the transaction's round trips do not wait for the server's event loop —
    here that loop is blocked outright, and the booking still commits. The rate-limit callback runs on
    the caller's loop (its Redis connections live there), the slot callback on the bookings' thread."""
    import threading
    import time

    from guahao.booking.dbthread import BookingsInThread

    a = world["people"][0]
    calls = []

    async def counted(person_id):
        calls.append(("person", threading.current_thread() is threading.main_thread(), person_id))

    def on_slot(slot_id, session_id):
        calls.append(("slot", threading.current_thread() is threading.main_thread(), session_id))

    def committed() -> bool:
        with pg.reading() as s:
            return s.execute(text("SELECT count(*) FROM bookings")).scalar() == 1

    async def run():
        bookings = BookingsInThread(_bookings(pg, size=1))
        await bookings.open()
        try:
            assert bookings.ready()
            task = asyncio.create_task(bookings.book(NOW, a["account"], world["slots"][0][0], a["patient"],
                                                     "local", on_slot=on_slot))
            await asyncio.sleep(0)  # the task hands the transaction to the bookings' thread
            deadline = time.monotonic() + 5
            while not committed() and time.monotonic() < deadline:
                time.sleep(0.02)  # this loop is blocked: nothing on it runs meanwhile
            assert committed()
            view = await task
            assert view.Booking.patient_id == a["patient"]
            # Not known ahead: the person's rate limit is counted on this loop, not the thread's.
            await bookings.book(NOW, a["account"], world["slots"][1][0], a["patient"], "local",
                                on_person=counted)
        finally:
            thread = bookings._thread
            await bookings.close()
        assert not thread.is_alive() and not bookings.ready()
    asyncio.run(run())
    assert calls == [("slot", False, world["sessions"][0]), ("person", True, a["person"])]


def test_a_connection_pinged_often_keeps_its_prepared_statements_after_a_refusal(pg, world):
    """psycopg prepares a statement of its own once run 5 times (the rest ping `SELECT 1` included), and from
    then on its rollback() sends DEALLOCATE ALL, which took the booking's prepared statements with it: the
    next booking on that connection failed with "prepared statement does not exist". A server running all
    day pings each connection after every rest, so that came in production, not only under the bench's
    granian replay where it was seen. The bookings' connections never let psycopg prepare on its own."""
    a, b = world["people"][0], world["people"][1]
    slots = world["slots"][0]

    async def run():
        bookings = _bookings(pg, size=1)
        await bookings.open()
        try:
            async with bookings.pool().connection() as c:
                for _ in range(8):
                    await bookings.ping(c)
            await bookings.book(NOW, a["account"], slots[0], a["patient"], "local")
            with pytest.raises(DomainError) as refused:  # rolled back by book_on
                await bookings.book(NOW, b["account"], slots[0], b["patient"], "local")
            assert refused.value.code == "SLOT_TAKEN"
            return await bookings.book(NOW, b["account"], slots[1], b["patient"], "local")
        finally:
            await bookings.close()
    view = asyncio.run(run())
    assert view.Booking.slot_id == slots[1] and view.Booking.patient_id == b["patient"]


def test_a_new_connection_has_planned_every_booking_statement_before_its_first_booking(pg):
    """At T every connection's first booking paid for planning and for that backend's catalog caches (a
    batch's first round trip took 40–95 ms at T, 1–3 ms a second later): `prepare` runs each statement
    once on ids that match nothing, rolled back, and keeps its generic plan."""
    async def run():
        bookings = _bookings(pg, size=1)
        await bookings.open()
        try:
            async with bookings.pool().connection() as c:
                plans = await (await c.execute(
                    "SELECT name, generic_plans, custom_plans FROM pg_prepared_statements ORDER BY name")).fetchall()
                mode = (await (await c.execute("SHOW plan_cache_mode")).fetchone())[0]
                status = c.info.transaction_status
            return plans, mode, status
        finally:
            await bookings.close()
    plans, mode, status = asyncio.run(run())
    assert [p[0] for p in plans] == ["guahao_has_visit_card", "guahao_insert_booking", "guahao_insert_one",
                                     "guahao_lock_person",
                                     "guahao_lock_persons", "guahao_lock_sessions", "guahao_settle",
                                     "guahao_slot_for_booking", "guahao_slots_and_visits", "guahao_visits_near"]
    assert all(generic == 1 and custom == 0 for _, generic, custom in plans)
    assert mode == "force_generic_plan" and status == psycopg.pq.TransactionStatus.IDLE


def test_a_stop_waits_for_the_bookings_under_way_and_stops_them_too(pg, world):
    """A booking takes its place on the session's row (the conditional UPDATE) and holds that row's lock
    until its commit, and a stop changes the session's status on the same row: a stop while a booking is
    under way waits for its commit, then lists and stops it — no active booking is left in a stopped
    session."""
    import threading

    from guahao.schedule import planning
    from guahao.schedule.models import ClinicSession

    a = world["people"][0]
    sid = world["sessions"][0]
    stopped = []
    with pg.transaction() as booking_tx:
        view = service.book_with_view(booking_tx, NOW, a["account"], world["slots"][0][0], a["patient"], "local")

        def stop():
            with pg.transaction() as s:
                stopped.extend(planning.stop_session(s, NOW, s.get(ClinicSession, sid), "staff:1", "停诊"))
        t = threading.Thread(target=stop)
        t.start()
        t.join(0.5)
        assert t.is_alive()  # waiting for the booking's transaction
    t.join(10)
    assert stopped == [view.Booking.id]
    with pg.reading() as s:
        assert s.execute(text("SELECT status FROM bookings WHERE id = :b"), dict(b=view.Booking.id)).scalar() \
            == "stopped"


def test_array_literals_read_back_as_the_values_and_refuse_what_would_need_quoting(pg):
    """A batch passes its ids and dates as array literals (one text value each, not a list psycopg adapts
    element by element): PostgreSQL must read back exactly the values, and anything whose text could carry
    a comma, a brace, a quote or a space is refused rather than sent."""
    ids, days = [3, 1, 2_000_000_001, 0, -7], [date(2026, 12, 1), date(1999, 1, 31)]

    async def run():
        async with await psycopg.AsyncConnection.connect(pg.pg_conninfo, autocommit=True,
                                                         **pg.pg_connect_args) as c:
            cur = psycopg.AsyncClientCursor(c)
            await cur.execute("SELECT %(i)s::int[], %(d)s::date[], %(e)s::int[]",
                              dict(i=array_literal(ids), d=array_literal(days), e=array_literal([])))
            return await cur.fetchone()
    assert asyncio.run(run()) == (ids, days, [])
    for bad in ([datetime(2026, 12, 1, 7, 0)], ["1,2"], [True], [None], [1.5]):
        with pytest.raises(TypeError):
            array_literal(bad)
