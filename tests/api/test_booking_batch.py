"""Several bookings in one transaction (guahao/booking/batch.py) answer as each would alone, on PostgreSQL."""

import asyncio
from datetime import date, timedelta

import psycopg
import pytest
from sqlalchemy import text

from guahao.accounts.models import Ban, VisitCard
from guahao.booking import batch as batching
from guahao.booking import service
from guahao.booking.dbthread import BookingsInThread
from guahao.booking.pg_async import Bookings, prepare
from guahao.booking.rules import LimitPolicy, limit_span
from guahao.errors import DomainError
from tests import factories as f
from tests.held import behind_open_transaction

pytestmark = pytest.mark.postgres
NOW = f.local_dt(2026, 12, 1, 10, 0)
D1 = date(2026, 12, 2)


@pytest.fixture
def db(postgres_db):
    return postgres_db


def _people(db, client, n):
    people = []
    for _ in range(n):
        _, pid, _ = f.signup(client)
        with db.reading() as s:
            aid, person = s.execute(text("SELECT account_id, person_id FROM patients WHERE id = :p"),
                                    dict(p=pid)).one()
        people.append(dict(account=aid, patient=pid, person=person))
    return people


def _items(loop, wanted):
    return [batching.Item(NOW, p["account"], slot, p["patient"], "local", None, None, p["person"],
                          loop.create_future()) for p, slot in wanted]


def _outcome(item):
    try:
        return item.future.result().Booking.slot_id
    except DomainError as e:
        return e.code


def _counters_match(db) -> bool:
    with db.reading() as s:
        return s.execute(text(
            "SELECT count(*) FROM clinic_sessions cs WHERE booked <> (SELECT count(*) FROM bookings b "
            "WHERE b.session_id = cs.id AND b.status IN ('booked', 'pending_payment'))")).scalar() == 0


def test_a_batch_answers_each_booking_as_it_would_be_answered_alone(db, client):
    with db.transaction() as s:
        doc = f.doctor(s, f.department(s, f.hospital(s)))
        roomy, last_place = f.session(s, doc, D1, "AM", capacity=3), f.session(s, doc, D1, "PM", capacity=3)
        roomy_slots, last_slots = f.slot_ids(s, roomy), f.slot_ids(s, last_place)
    p = _people(db, client, 7)
    with db.transaction() as s:
        service.book(s, NOW, p[0]["account"], last_slots[0], p[0]["patient"], "local")
        # Staff lower the capacity: one place left, two numbers still free.
        s.execute(text("UPDATE clinic_sessions SET capacity = 2 WHERE id = :i"), dict(i=last_place.id))
        s.add(Ban(person_id=p[1]["person"], starts_on=NOW.date(), ends_on=NOW.date() + timedelta(days=90),
                  reason="爽约", created_at=NOW))

    async def run():
        conn = await psycopg.AsyncConnection.connect(db.pg_conninfo, autocommit=True, **db.pg_connect_args)
        await prepare(conn)
        try:
            items = _items(asyncio.get_running_loop(), [
                (p[1], roomy_slots[0]),  # banned
                (p[2], roomy_slots[1]),  # books
                (p[3], last_slots[0]),  # held already: SLOT_TAKEN
                (p[4], last_slots[1]),  # both pass the rules (one place read as left) ...
                (p[5], roomy_slots[2]),  # books
                (p[6], last_slots[2]),  # ... and at the write one of them finds the place gone
            ])
            await batching.run_batch(conn, items, limit_span(LimitPolicy()))
            return [_outcome(i) for i in items]
        finally:
            await conn.close()
    out = asyncio.run(run())
    assert out[:3] == ["BLACKLISTED", roomy_slots[1], "SLOT_TAKEN"] and out[4] == roomy_slots[2]
    assert sorted(map(str, out[3::2])) == sorted([str(last_slots[1]), "SESSION_FULL"])
    with db.reading() as s:
        assert s.execute(text("SELECT count(*) FROM bookings")).scalar() == 4
        assert s.execute(text("SELECT booked, capacity FROM clinic_sessions WHERE id = :i"),
                         dict(i=last_place.id)).one() == (2, 2)
    assert _counters_match(db)


def test_a_batch_answers_a_missing_number_and_another_accounts_patient_as_not_found(db, client):
    with db.transaction() as s:
        slots = f.slot_ids(s, f.session(s, f.doctor(s, f.department(s, f.hospital(s))), D1, "AM"))
    p = _people(db, client, 3)
    stranger = dict(p[1], account=p[0]["account"])  # a patient of another account

    async def run():
        conn = await psycopg.AsyncConnection.connect(db.pg_conninfo, autocommit=True, **db.pg_connect_args)
        await prepare(conn)
        try:
            items = _items(asyncio.get_running_loop(),
                           [(p[0], slots[-1] + 1000), (stranger, slots[1]), (p[2], slots[2])])
            await batching.run_batch(conn, items, limit_span(LimitPolicy()))
            return [_outcome(i) for i in items]
        finally:
            await conn.close()
    assert asyncio.run(run()) == ["NOT_FOUND", "NOT_FOUND", slots[2]]
    assert _counters_match(db)


def test_steps_that_must_ask_the_database_still_run_inside_the_batch(db, client):
    """A batch answers its bookings' steps from its first round trip as plain calls; a visit card, or a
    person other than the one expected, still asks the database on the batch's connection."""
    with db.transaction() as s:
        doc = f.doctor(s, f.department(s, f.hospital(s, requires_visit_card=True)))
        cs = f.session(s, doc, D1, "AM", capacity=5)
        slots = f.slot_ids(s, cs)
    p = _people(db, client, 4)
    with db.transaction() as s:
        for q in (p[0], p[2]):
            s.add(VisitCard(patient_id=q["patient"], hospital_id=cs.hospital_id, card_number=f"C{q['patient']}",
                            created_at=NOW))

    async def run():
        conn = await psycopg.AsyncConnection.connect(db.pg_conninfo, autocommit=True, **db.pg_connect_args)
        await prepare(conn)
        try:
            items = _items(asyncio.get_running_loop(), [(p[0], slots[0]), (p[1], slots[1]), (p[2], slots[2])])
            items[2].person_id = p[3]["person"]  # a wrong guess: the person is locked in a round trip of its own
            await batching.run_batch(conn, items, limit_span(LimitPolicy()))
            return [_outcome(i) for i in items]
        finally:
            await conn.close()
    assert asyncio.run(run()) == [slots[0], "VISIT_CARD_REQUIRED", slots[2]]
    with db.reading() as s:
        assert s.execute(text("SELECT patient_id FROM bookings ORDER BY slot_id")).scalars().all() == [
            p[0]["patient"], p[2]["patient"]]
    assert _counters_match(db)


def _batch_behind(db, hold, wanted, while_waiting=None):
    """A batch of `wanted` (person, slot) while `hold(s)` has written in a transaction left open: the batch
    waits for that transaction (asserted), which then commits. The outcomes, and the numbers in the order
    their bookings were answered. `while_waiting(backend pid)` runs as the batch waits."""
    async def run(release):
        conn = await psycopg.AsyncConnection.connect(db.pg_conninfo, autocommit=True, **db.pg_connect_args)
        await prepare(conn)
        try:
            items = _items(asyncio.get_running_loop(), wanted)
            answered = []
            for it in items:
                it.future.add_done_callback(lambda _, it=it: answered.append(it.slot_id))
            done = asyncio.ensure_future(batching.run_batch(conn, items, limit_span(LimitPolicy())))
            await asyncio.sleep(0.5)
            assert not done.done()  # waiting for the other transaction's session row
            if while_waiting is not None:
                while_waiting(conn.info.backend_pid)
            release.set()
            await done
            return [_outcome(i) for i in items], answered
        finally:
            await conn.close()
    return behind_open_transaction(db, hold, run)


def test_a_number_taken_by_another_transaction_meanwhile_refuses_only_its_booking(db, client):
    """The other transaction has the row in but not committed when the batch writes: the unique index makes
    the batch's insert wait, then do nothing — SLOT_TAKEN for that booking, the others book, counters hold."""
    with db.transaction() as s:
        doc = f.doctor(s, f.department(s, f.hospital(s)))
        slots = f.slot_ids(s, f.session(s, doc, D1, "AM", capacity=5))
    p = _people(db, client, 3)
    outcomes, answered = _batch_behind(
        db, lambda s: service.book(s, NOW, p[0]["account"], slots[0], p[0]["patient"], "local"),
        [(p[1], slots[0]), (p[2], slots[1])])
    assert outcomes == ["SLOT_TAKEN", slots[1]]
    # The booking that went in is answered before the conflict's look-up, not after it.
    assert answered == [slots[1], slots[0]]
    with db.reading() as s:
        assert s.execute(text("SELECT count(*) FROM bookings")).scalar() == 2
    assert _counters_match(db)


def test_a_batch_writes_its_rows_while_another_holds_their_session_and_then_takes_only_the_room_left(db, client):
    """Another transaction has taken a place of the session and holds its row, as another batch does between
    its sessions' lock and its commit: this batch's rows are already written as it waits for that row (its
    backend holds the bookings table's write lock), and once it has the row it keeps only as many as there
    are places left — here one of two; the other is deleted and answered SESSION_FULL."""
    with db.transaction() as s:
        doc = f.doctor(s, f.department(s, f.hospital(s)))
        slots = f.slot_ids(s, f.session(s, doc, D1, "AM", capacity=3))
        s.execute(text("UPDATE clinic_sessions SET capacity = 2"))  # staff lowered it: three numbers, two places
    p = _people(db, client, 3)
    locks = []

    def look(pid):
        with db.reading() as s:
            locks.extend(s.execute(text(
                "SELECT mode || ':' || granted FROM pg_locks WHERE pid = :p AND relation = 'bookings'::regclass"),
                dict(p=pid)).scalars())
            locks.extend(s.execute(text("SELECT wait_event_type FROM pg_stat_activity WHERE pid = :p"),
                                   dict(p=pid)).scalars())
    outcomes, _ = _batch_behind(
        db, lambda s: service.book(s, NOW, p[0]["account"], slots[0], p[0]["patient"], "local"),
        [(p[1], slots[1]), (p[2], slots[2])], while_waiting=look)
    assert "RowExclusiveLock:true" in locks and locks[-1] == "Lock"
    assert sorted(map(str, outcomes)) == sorted([str(slots[1]), "SESSION_FULL"])
    with db.reading() as s:
        assert s.execute(text("SELECT count(*) FROM bookings")).scalar() == 2
        assert s.execute(text("SELECT booked FROM clinic_sessions")).scalar() == 2
    assert _counters_match(db)


def test_a_batch_reads_its_persons_visits_under_their_locks(db, client):
    """The other transaction holds a person's lock while it books that person's second visit of the day:
    the batch waits for the lock and then counts both visits (DAILY_LIMIT) — its visits are read after
    the locks are taken, not as of the moment the batch began."""
    with db.transaction() as s:
        h = f.hospital(s)
        first, second, third = (f.slot_ids(s, f.session(s, f.doctor(s, f.department(s, h, name=n)), D1, "AM"))
                                for n in ("心内科", "消化内科", "呼吸内科"))
    p = _people(db, client, 2)

    def hold(s):
        for slot in (first[0], second[0]):
            service.book(s, NOW, p[0]["account"], slot, p[0]["patient"], "local")
    outcomes, _ = _batch_behind(db, hold, [(p[0], third[0]), (p[1], third[1])])
    assert outcomes == ["DAILY_LIMIT", third[1]]
    with db.reading() as s:
        assert s.execute(text("SELECT count(*) FROM bookings WHERE person_id = :p"),
                         dict(p=p[0]["person"])).scalar() == 2
    assert _counters_match(db)


def test_a_session_stopped_while_the_batch_runs_refuses_its_bookings_as_stopped(db, client):
    """Staff stop a session after the batch read its slots (their transaction holds the session's row when
    the batch locks the sessions): its booking is answered SESSION_STOPPED, not SESSION_FULL; the other
    session's books, and the counters hold."""
    with db.transaction() as s:
        doc = f.doctor(s, f.department(s, f.hospital(s)))
        stopping = f.slot_ids(s, f.session(s, doc, D1, "AM", capacity=5))
        other = f.slot_ids(s, f.session(s, doc, D1, "PM", capacity=5))
    p = _people(db, client, 2)
    with db.reading() as s:
        sid = s.execute(text("SELECT session_id FROM slots WHERE id = :i"), dict(i=stopping[0])).scalar()
    outcomes, _ = _batch_behind(
        db, lambda s: s.execute(text("UPDATE clinic_sessions SET status = 'stopped' WHERE id = :i"), dict(i=sid)),
        [(p[0], stopping[0]), (p[1], other[0])])
    assert outcomes == ["SESSION_STOPPED", other[0]]
    with db.reading() as s:
        assert s.execute(text("SELECT count(*) FROM bookings")).scalar() == 1
    assert _counters_match(db)


def test_taking_a_batch_keeps_persons_and_numbers_apart_and_order_of_arrival():
    loop = asyncio.new_event_loop()
    try:
        def item(person, slot, on_person=None):
            return batching.Item(NOW, 1, slot, 1, "local", on_person, None, person, loop.create_future())
        a, b, same_person, same_slot, unknown, c = (item(1, 10), item(2, 11), item(1, 12), item(3, 10),
                                                      item(None, 13), item(4, 14))
        pending = [a, b, same_person, same_slot, unknown, c]
        assert batching.take(pending, 8) == [a, b, c]
        assert pending == [same_person, same_slot, unknown]
        assert batching.take(pending, 2) == [same_person, same_slot]
        assert batching.take(pending, 8) == [unknown]  # the person not known ahead: alone
        counted_later = item(5, 15, on_person=object())
        pending = [counted_later, c]
        assert batching.take(pending, 8) == [counted_later] and pending == [c]  # a rate limit still to count
    finally:
        loop.close()


def test_through_the_bookings_thread_concurrent_bookings_share_transactions(db, client):
    """BookingsInThread with batches: 12 bookings at once over 2 connections all book, several to a
    transaction (rows written by one transaction share its xmin)."""
    with db.transaction() as s:
        doc = f.doctor(s, f.department(s, f.hospital(s)))
        slots = f.slot_ids(s, f.session(s, doc, D1, "AM", capacity=20))
    p = _people(db, client, 12)

    async def run():
        bookings = BookingsInThread(Bookings(db.pg_conninfo, 2, db.pg_connect_args), batch=8)
        await bookings.open()
        try:
            views = await asyncio.gather(*(
                bookings.book(NOW, q["account"], slots[i], q["patient"], "local", person_id=q["person"])
                for i, q in enumerate(p[:12])))
            return [v.Booking.slot_id for v in views]
        finally:
            await bookings.close()
    assert asyncio.run(run()) == slots[:12]
    with db.reading() as s:
        assert s.execute(text("SELECT count(*) FROM bookings")).scalar() == 12
        assert s.execute(text("SELECT count(DISTINCT xmin::text) FROM bookings")).scalar() <= 6
    assert _counters_match(db)


def test_a_batch_that_fails_books_each_of_its_bookings_alone(db, client, monkeypatch):
    """A deadlock with another kind of transaction, say: the batch is rolled back and each booking is
    carried out on its own, with its own answer."""
    with db.transaction() as s:
        doc = f.doctor(s, f.department(s, f.hospital(s)))
        slots = f.slot_ids(s, f.session(s, doc, D1, "AM", capacity=5))
    p = _people(db, client, 3)
    failed = []

    async def failing(conn, batch, span):
        failed.append(len(batch))
        async with psycopg.AsyncClientCursor(conn) as cur:
            await cur.execute("BEGIN; INSERT INTO bookings (id) VALUES (-1)")  # fails, mid-transaction
    monkeypatch.setattr(batching, "run_batch", failing)

    async def run():
        bookings = BookingsInThread(Bookings(db.pg_conninfo, 1, db.pg_connect_args), batch=8)
        await bookings.open()
        try:
            wanted = [(p[0], slots[0]), (p[1], slots[1]), (p[2], slots[1])]
            return await asyncio.gather(*(
                bookings.book(NOW, q["account"], slot, q["patient"], "local", person_id=q["person"])
                for q, slot in wanted), return_exceptions=True)
        finally:
            await bookings.close()
    out = asyncio.run(run())
    assert failed and sum(failed) >= 2
    assert [o.Booking.slot_id for o in out[:2]] == slots[:2]
    assert isinstance(out[2], DomainError) and out[2].code == "SLOT_TAKEN"
    assert _counters_match(db)


def test_a_number_another_batch_has_at_the_database_is_answered_busy_without_waiting(db, client):
    """Another worker's batch has number 0 at the database (its advisory lock on the number, taken in its
    first round trip and held to its commit): this batch answers that booking SLOT_BUSY at once instead of
    waiting on the unique index behind the other, and books the rest; once the other is done, number 0
    can be booked again (the other one failed: a limit of its patient, say)."""
    from guahao.booking.pg_async import NUMBER_LOCKS

    with db.transaction() as s:
        doc = f.doctor(s, f.department(s, f.hospital(s)))
        slots = f.slot_ids(s, f.session(s, doc, D1, "AM", capacity=5))
    p = _people(db, client, 3)

    async def run():
        other = await psycopg.AsyncConnection.connect(db.pg_conninfo, autocommit=True, **db.pg_connect_args)
        conn = await psycopg.AsyncConnection.connect(db.pg_conninfo, autocommit=True, **db.pg_connect_args)
        await prepare(conn)
        try:
            await other.execute("BEGIN")
            await other.execute("SELECT pg_advisory_xact_lock(%s, %s)", (NUMBER_LOCKS, slots[0]))
            items = _items(asyncio.get_running_loop(), [(p[0], slots[0]), (p[1], slots[1])])
            await asyncio.wait_for(batching.run_batch(conn, items, limit_span(LimitPolicy())), 5)
            first = [_outcome(i) for i in items]
            await other.execute("ROLLBACK")
            again = _items(asyncio.get_running_loop(), [(p[2], slots[0])])
            await batching.run_batch(conn, again, limit_span(LimitPolicy()))
            return first, _outcome(again[0])
        finally:
            await conn.close()
            await other.close()
    first, again = asyncio.run(run())
    assert first == ["SLOT_BUSY", slots[1]] and again == slots[0]
    with db.reading() as s:
        assert s.execute(text("SELECT count(*) FROM bookings")).scalar() == 2
    assert _counters_match(db)
