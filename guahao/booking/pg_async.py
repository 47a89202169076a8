"""The booking transaction on the event loop, on PostgreSQL: the release-time path.

`service.booking_steps` holds the rules; here psycopg's async connections carry them out, answering each
step as `repository.BookingStore` does through SQLAlchemy, in three round trips where the repository takes
seven: the transaction's start with the slot, the person's lock with their visits, and the booking with its
place and the commit (see BEGIN_SLOT, LOCK_AND_VISITS, BOOK_PLACE). At the release instant a booking's own
CPU is the limit: run in a worker thread through SQLAlchemy Core it cost ~2.5 ms, plus the hand-offs of the
GIL between the event loop and the booking threads; here it is plain statements on the loop, no thread.
The statements are written out in SQL (the same as the repository's, which tests/api/test_pg_async.py
checks answer for answer); bench/release_burst.py runs them as its raw-database limit.

Used for plain bookings on PostgreSQL. A booking with an Idempotency-Key, a reschedule, and everything on
SQLite go through the repository in a thread, as before.
"""

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable
from datetime import date, datetime, timedelta

import psycopg
from psycopg.rows import namedtuple_row
from psycopg_pool import AsyncConnectionPool

from guahao.booking.repository import integrity_code
from guahao.booking.service import booking_steps
from guahao.booking.models import ACTIVE_STATUSES
from guahao.booking.rules import LimitPolicy, limit_span
from guahao.clock import local
from guahao.db import read_utc, stored_utc
from guahao.errors import DomainError

log = logging.getLogger("guahao.booking")
_ACTIVE = ", ".join(f"'{s}'" for s in ACTIVE_STATUSES)

SLOT_FOR_BOOKING = f"""
SELECT sl.id AS slot_id, sl.seq, sl.starts_at AS slot_start, sl.ends_at AS slot_end, cs.id AS session_id,
       cs.hospital_id, cs.department_id, cs.doctor_id, cs.visit_date, cs.period, cs.starts_at, cs.number_type,
       cs.fee, cs.status, cs.online_bookable, cs.release_at, cs.capacity, cs.booked, h.same_day_booking,
       h.requires_visit_card, h.requires_prepayment,
       EXISTS (SELECT b.id FROM bookings b WHERE b.slot_id = sl.id AND b.status IN ({_ACTIVE})) AS held,
       p.id AS patient_pk, p.person_id, h.name AS hospital_name, h.cancel_deadline_time,
       h.cancel_minutes_before, d.name AS department_name, d.location, doc.name AS doctor_name,
       doc.title AS doctor_title, p.name AS patient_name
FROM slots sl JOIN clinic_sessions cs ON cs.id = sl.session_id JOIN hospitals h ON h.id = cs.hospital_id
JOIN departments d ON d.id = cs.department_id LEFT OUTER JOIN doctors doc ON doc.id = cs.doctor_id
LEFT OUTER JOIN patients p ON p.id = %(patient_id)s AND p.account_id = %(account_id)s AND p.removed_at IS NULL
WHERE sl.id = %(slot_id)s"""
HAS_VISIT_CARD = "SELECT 1 FROM visit_cards WHERE patient_id = %(patient_id)s AND hospital_id = %(hospital_id)s"
LOCK_PERSON = """
UPDATE persons SET booking_version = booking_version + 1 WHERE id = %(pid)s
RETURNING (SELECT max(ends_on) FROM bans WHERE person_id = %(pid)s AND lifted_at IS NULL
           AND ends_on > %(today)s)"""
VISITS_NEAR = f"""
SELECT hospital_id, department_id, visit_date FROM bookings
WHERE person_id = %(pid)s AND status IN ({_ACTIVE}) AND visit_date BETWEEN %(lo)s AND %(hi)s"""


BOOKING_COLUMNS = ("serial_number", "account_id", "patient_id", "person_id", "slot_id", "session_id",
                   "hospital_id", "department_id", "doctor_id", "visit_date", "period", "period_start",
                   "period_end", "seq", "number_type", "fee", "insurance_type", "created_at", "status",
                   "rescheduled_from_id")

# Several bookings per transaction (booking/batch.py): the batch writes its bookings (INSERT_BOOKING), then
# locks their sessions in id order (LOCK_SESSIONS) and takes their places (SETTLE), all in one message.
# NO KEY UPDATE: the other batches' rows check their foreign key to the session with KEY SHARE, which this
# lock lets through, so their writes go on while this batch holds its sessions.
LOCK_SESSIONS = "SELECT id FROM clinic_sessions WHERE id = ANY(%(ids)s) ORDER BY id FOR NO KEY UPDATE"
# A booking row, written before its session is locked: its foreign keys' checks and index entries are most
# of a write's time in PostgreSQL, and every other batch of the session used to wait for them. `room` is the
# session as last committed (a session then full or stopped gets no row); the place itself is taken under
# the lock, in SETTLE, which takes the row out again when there was none.
_INSERT_ROW = f"""
WITH room AS (
    SELECT booked < capacity AND status = 'open' AS open, status FROM clinic_sessions WHERE id = %(session_id)s),
ins AS (
    INSERT INTO bookings ({', '.join(BOOKING_COLUMNS)})
    SELECT {', '.join(f'%({c})s' for c in BOOKING_COLUMNS)} FROM room WHERE room.open
    {{on_conflict}}RETURNING id)
SELECT (SELECT id FROM ins), (SELECT open FROM room), (SELECT status FROM room)"""
# In a batch a unique index's refusal does nothing, so that the batch's other bookings go on; alone, it
# raises, which names the index.
INSERT_BOOKING = _INSERT_ROW.format(on_conflict="ON CONFLICT DO NOTHING ")
INSERT_ONE = _INSERT_ROW.format(on_conflict="")
# Run after LOCK_SESSIONS, as a statement of its own, so that it reads the counters as their last holders
# committed them. The rows this transaction wrote (xmin) take their sessions' places in the order written;
# those beyond a session's room, or of a session stopped meanwhile, are deleted. One row per slot id given,
# in that order: (booking id kept or NULL, places left after it, the session's status).
SETTLE = f"""
WITH mine AS (
    SELECT id, slot_id, session_id, row_number() OVER (PARTITION BY session_id ORDER BY id) AS nth
    FROM bookings
    WHERE slot_id = ANY(%(slot_ids)s::int[]) AND status IN ({_ACTIVE}) AND xmin = pg_current_xact_id()::xid),
room AS (
    SELECT id, capacity - booked AS left_before, status,
           CASE WHEN status = 'open' THEN greatest(capacity - booked, 0) ELSE 0 END AS places
    FROM clinic_sessions WHERE id IN (SELECT session_id FROM mine)),
kept AS (
    SELECT m.id, m.session_id, r.left_before - m.nth AS places_left
    FROM mine m JOIN room r ON r.id = m.session_id WHERE m.nth <= r.places),
dropped AS (
    DELETE FROM bookings WHERE id IN (SELECT id FROM mine EXCEPT SELECT id FROM kept) RETURNING id),
taken AS (
    UPDATE clinic_sessions cs SET booked = cs.booked + k.n
    FROM (SELECT session_id, count(*) AS n FROM kept GROUP BY session_id) k
    WHERE cs.id = k.session_id RETURNING cs.id)
SELECT kept.id, kept.places_left, room.status
FROM unnest(%(slot_ids)s::int[]) WITH ORDINALITY AS r(slot_id, n)
LEFT JOIN mine ON mine.slot_id = r.slot_id LEFT JOIN kept ON kept.id = mine.id
LEFT JOIN room ON room.id = mine.session_id
ORDER BY r.n"""

# A batch's first round trip in two statements whatever its size (each result costs the bookings' thread
# the interpreter: see batch.py): its persons locked in id order, as every batch locks them, with their
# bans; then, under those locks, every booking's slot (SLOT_FOR_BOOKING) and its person's visits from a
# date on (the slot's date is not known yet), in the order given.
LOCK_PERSONS = """
WITH locked AS (
    UPDATE persons SET booking_version = booking_version + 1
    WHERE id IN (SELECT id FROM persons WHERE id = ANY(%(pids)s::int[]) ORDER BY id FOR NO KEY UPDATE)
    RETURNING id)
SELECT w.pid, (SELECT max(ends_on) FROM bans WHERE person_id = w.pid AND lifted_at IS NULL
               AND ends_on > w.today)
FROM unnest(%(pids)s::int[], %(todays)s::date[]) AS w(pid, today) JOIN locked ON locked.id = w.pid"""
NUMBER_LOCKS = 0x67680001  # the first key of the advisory locks on numbers (the second: the slot id)
_ONE_SLOT = (SLOT_FOR_BOOKING.replace("%(slot_id)s", "r.slot_id").replace("%(account_id)s", "r.account_id")
             .replace("%(patient_id)s", "r.patient_id"))
# `free`: no other transaction has this number at the database (a transaction-scoped advisory lock, taken
# without waiting in the first round trip of a batch and held to its end: see batch.py).
SLOTS_AND_VISITS = f"""
SELECT s.*, v.hospitals, v.departments, v.dates, pg_try_advisory_xact_lock({NUMBER_LOCKS}, r.slot_id) AS free
FROM unnest(%(slot_ids)s::int[], %(account_ids)s::int[], %(patient_ids)s::int[], %(pids)s::int[],
            %(los)s::date[]) WITH ORDINALITY AS r(slot_id, account_id, patient_id, pid, lo, n)
LEFT JOIN LATERAL ({_ONE_SLOT}) s ON true
LEFT JOIN LATERAL (
    SELECT array_agg(hospital_id) AS hospitals, array_agg(department_id) AS departments,
           array_agg(visit_date) AS dates
    FROM bookings WHERE person_id = r.pid AND status IN ({_ACTIVE}) AND visit_date >= r.lo) v ON true
ORDER BY r.n"""


def array_literal(values) -> str:
    """A PostgreSQL array literal of ints or dates, passed as one text value: psycopg's client-side binding
    adapts a list element by element in Python (~87 µs for a batch of 8's six arrays, ~21 µs as literals),
    while the statement's cast (or the prepared parameter's type) reads the literal in PostgreSQL. Nothing
    here needs quoting: a str() of an int or a date has no comma, brace, quote or space."""
    out = []
    for v in values:
        if type(v) is not int and type(v) is not date:
            raise TypeError(f"array_literal takes ints and dates, not {type(v).__name__}")
        out.append(str(v))
    return "{" + ",".join(out) + "}"


def _prepared(name: str, sql: str) -> tuple[str, str]:
    """(PREPARE once per connection, EXECUTE with the statement's named parameters): several statements
    go in one simple-protocol round trip (values bound client-side), and the server still parses and
    plans each only once per connection."""
    names = list(dict.fromkeys(re.findall(r"%\((\w+)\)s", sql)))
    body = re.sub(r"%\((\w+)\)s", lambda m: f"${names.index(m.group(1)) + 1}", sql)
    return f"PREPARE {name} AS {body}", f"EXECUTE {name}({', '.join(f'%({n})s' for n in names)})"


_PREPARE_SLOT, _SLOT = _prepared("guahao_slot_for_booking", SLOT_FOR_BOOKING)
_PREPARE_CARD, _CARD = _prepared("guahao_has_visit_card", HAS_VISIT_CARD)
_PREPARE_LOCK, _LOCK = _prepared("guahao_lock_person", LOCK_PERSON)
_PREPARE_NEAR, _NEAR = _prepared("guahao_visits_near", VISITS_NEAR)
# A batch's writes are prepared too: SETTLE runs while the batch holds its sessions' row locks, which every
# other batch of those sessions waits for, so planning it there lengthened every wait.
_PREPARE_LOCK_SESSIONS, _LOCK_SESSIONS = _prepared("guahao_lock_sessions", LOCK_SESSIONS)
_PREPARE_INSERT_BOOKING, _INSERT_BOOKING = _prepared("guahao_insert_booking", INSERT_BOOKING)
_PREPARE_INSERT_ONE, _INSERT_ONE = _prepared("guahao_insert_one", INSERT_ONE)
_PREPARE_SETTLE, _SETTLE = _prepared("guahao_settle", SETTLE)
_PREPARE_LOCK_PERSONS, _LOCK_PERSONS = _prepared("guahao_lock_persons", LOCK_PERSONS)
_PREPARE_SLOTS_AND_VISITS, _SLOTS_AND_VISITS = _prepared("guahao_slots_and_visits", SLOTS_AND_VISITS)
PREPARE = ";\n".join((_PREPARE_SLOT, _PREPARE_CARD, _PREPARE_LOCK, _PREPARE_NEAR, _PREPARE_LOCK_SESSIONS,
                       _PREPARE_INSERT_BOOKING, _PREPARE_INSERT_ONE, _PREPARE_SETTLE, _PREPARE_LOCK_PERSONS,
                       _PREPARE_SLOTS_AND_VISITS))
# Round trips of a booking: the transaction's start and the slot; the person's lock and visits; the
# booking, its place and the commit (BOOK_PLACE) — three, and one more where visit cards are required.
BEGIN_SLOT = f"BEGIN; {_SLOT}"
LOCK_AND_VISITS = f"{_LOCK}; {_NEAR}"
# When the person behind the patient is known before the slot is read (security/guards reads it ahead of
# the release): their lock and visits go with the slot, two round trips in all. Their visits are read from
# a date on (no slot's date is known yet) and the ones near the visit date picked out afterwards.
BEGIN_SLOT_LOCK = f"BEGIN; {_SLOT}; {LOCK_AND_VISITS}"
_NO_END = date(9999, 12, 31)


def slot_params(slot_id: int, account_id: int, patient_id: int, ahead: tuple[int, date, int] | None) -> dict:
    """The parameters of BEGIN_SLOT, or of BEGIN_SLOT_LOCK when the person is known `ahead` (person id,
    today, the limits' span): visits are read from `today − span` on, no slot's date being known yet."""
    params = dict(slot_id=slot_id, account_id=account_id, patient_id=patient_id)
    if ahead is not None:
        pid, today, span = ahead
        params.update(pid=pid, today=today, lo=today - timedelta(days=span), hi=_NO_END)
    return params


async def read_slot_lock(cur) -> tuple:
    """(slot row, person lock row, visits): the three results after the cursor's current one."""
    cur.nextset()
    row = await cur.fetchone()
    cur.nextset()
    locked = await cur.fetchone()
    cur.nextset()
    return row, locked, await cur.fetchall()


# Ids that match nothing, for running each statement once when a connection opens (`prepare`).
_NOBODY = dict({c: None for c in BOOKING_COLUMNS}, slot_id=0, account_id=0, patient_id=0, pid=0,
               today=date(2000, 1, 1), lo=date(2000, 1, 1), hi=date(2000, 1, 1), hospital_id=0, session_id=0,
               ids=[0], pids=[0], todays=[date(2000, 1, 1)], slot_ids=[0], account_ids=[0], patient_ids=[0],
               los=[date(2000, 1, 1)])
# A connection's first run of a statement is several times slower than the next ones: PostgreSQL plans it
# and fills that backend's catalog caches (tables, indexes, statistics). The connections are opened when the
# server starts and, before the release, carry no booking, so at T every first batch paid for that: timed
# inside a worker, a batch's first round trip took 40–95 ms at T and 1–3 ms a second later. Run once here,
# on ids that match nothing and rolled back, and planned once for good (generic plans: every statement is a
# look-up by key, whose plan does not depend on the values).
# (The COMMIT ends the message's implicit transaction: without it the BEGIN would take the SET in, and the
# ROLLBACK undo it.)
WARM = (f"SET plan_cache_mode = force_generic_plan; COMMIT; BEGIN; {_SLOT}; {_LOCK}; {_NEAR}; {_CARD}; "
        f"{_LOCK_SESSIONS}; {_INSERT_BOOKING}; {_INSERT_ONE}; {_SETTLE}; {_LOCK_PERSONS}; {_SLOTS_AND_VISITS}; "
        "ROLLBACK")


def booking_row(values: dict) -> dict:
    """The booking row's parameters (BOOKING_COLUMNS) from the steps' values, its instant stored as UTC."""
    row = {c: values.get(c) for c in BOOKING_COLUMNS}
    row["created_at"] = stored_utc(values["created_at"])
    return row


async def prepare(conn: psycopg.AsyncConnection) -> None:
    """Prepare the booking's statements on a new connection (the pool's `configure`) and warm them (WARM),
    in one round trip."""
    async with psycopg.AsyncClientCursor(conn) as cur:
        await cur.execute(f"{PREPARE};\n{WARM}", _NOBODY)


# The booking row, then its session's place and the commit, in one round trip (several statements in one
# simple-protocol query, so the parameters are bound client-side), as a batch of one: the row first, the
# session's counter row locked only for the place and the commit (see batch.py), and no other booking of
# that session waits for this process's event loop to come back to it. Every path writes the row before it
# locks the session (the repository's too), so none holds a session while it waits on another's number. No
# place left: no row, and what commits is only the person's lock counter (persons.booking_version, which is
# nothing but a lock).
BOOK_PLACE = f"{_INSERT_ONE}; {_LOCK_SESSIONS}; {_SETTLE}; COMMIT"


class BookingStore:
    """Carries out `service.booking_steps` on one psycopg async connection, inside its transaction."""

    def __init__(self, conn: psycopg.AsyncConnection, on_person: Callable[[int], Awaitable[None]] | None = None,
                 on_slot: Callable[[int, int], None] | None = None, person_ahead: tuple[int, date, int] | None = None):
        """`person_ahead`: (the person expected behind the patient, today, the limits' span in days) to lock
        with the slot's read (BEGIN_SLOT_LOCK); a wrong guess only costs the usual round trip."""
        self.conn = conn
        self.on_person = on_person
        self.on_slot = on_slot
        self.person_ahead = person_ahead
        self._locked = None  # (person id, today, visits read from, ban end, visits) taken with the slot

    def _cursor(self, row_factory=None) -> psycopg.AsyncClientCursor:
        # Client-side binding: several statements go in one simple-protocol message.
        return psycopg.AsyncClientCursor(self.conn, row_factory=row_factory)

    async def slot_for_booking(self, slot_id: int, account_id: int, patient_id: int):
        """The first step: begins the transaction in the same round trip."""
        ahead = self.person_ahead
        params = slot_params(slot_id, account_id, patient_id, ahead)
        async with self._cursor(namedtuple_row) as cur:
            await cur.execute(BEGIN_SLOT if ahead is None else BEGIN_SLOT_LOCK, params)
            if ahead is not None:
                return self._slot_read(params, *await read_slot_lock(cur))
            cur.nextset()
            return self._slot_read(params, await cur.fetchone())

    def _slot_read(self, params: dict, row, locked=None, visits=()):
        """The slot's row as the steps see it; the person's lock and visits kept for `lock_person`."""
        if locked is not None:  # used only for this person (lock_person)
            self._locked = (params["pid"], params["today"], params["lo"], locked[0], [tuple(v) for v in visits])
        if row is None:
            return None
        if self.on_slot is not None:
            self.on_slot(row.slot_id, row.session_id)
        # Stored as naive UTC (guahao.db.UTCDateTime): read back as an aware instant, as SQLAlchemy does.
        return row._replace(release_at=read_utc(row.release_at))

    async def person_known(self, person_id: int) -> None:
        if self.on_person is not None:
            await self.on_person(person_id)

    async def has_visit_card(self, patient_id: int, hospital_id: int) -> bool:
        async with self._cursor() as cur:
            await cur.execute(_CARD, dict(patient_id=patient_id, hospital_id=hospital_id))
            return await cur.fetchone() is not None

    def locked_with_slot(self, person_id: int, today: date, around: date, span: int):
        """`lock_person`'s answer when the slot's step took that person's lock and visits, else None."""
        if self._locked is None:
            return None
        pid, locked_today, read_from, banned_until, visits = self._locked
        lo, hi = around - timedelta(days=span), around + timedelta(days=span)
        if (pid, locked_today) != (person_id, today) or lo < read_from:
            return None
        return banned_until, [v for v in visits if lo <= v[2] <= hi]

    async def lock_person(self, person_id: int, today: date, around: date, span: int):
        """(end of the person's ban or None, their active visits within `span` days of `around`): the
        lock, then the read under it, in one round trip — or none, when the slot's step took them."""
        taken = self.locked_with_slot(person_id, today, around, span)
        if taken is not None:
            return taken
        lo, hi = around - timedelta(days=span), around + timedelta(days=span)
        async with self._cursor() as cur:
            await cur.execute(LOCK_AND_VISITS, dict(pid=person_id, today=today, lo=lo, hi=hi))
            row = await cur.fetchone()
            cur.nextset()
            return None if row is None else row[0], await cur.fetchall()

    async def book_place(self, values: dict) -> tuple[int | None, int | None]:
        """Commits: the transaction's last step (see BOOK_PLACE). A unique index's refusal raises, and
        the caller rolls back."""
        row = booking_row(values)
        try:
            async with self._cursor() as cur:
                await cur.execute(BOOK_PLACE, dict(row, ids=array_literal([row["session_id"]]),
                                                   slot_ids=array_literal([row["slot_id"]])))
                written = await cur.fetchone()
                cur.nextset()
                cur.nextset()
                placed = await cur.fetchone()
        except psycopg.errors.UniqueViolation as e:
            raise DomainError(integrity_code(e)) from None
        return placed_or_refused(written, placed)


def placed_or_refused(written: tuple, placed: tuple) -> tuple[int | None, int | None]:
    """(booking id, places left) from a row's INSERT_BOOKING (or INSERT_ONE) and SETTLE results; (None,
    None) when no place was left, which the booking's steps answer SESSION_FULL. A session stopped since
    its slot was read raises SESSION_STOPPED."""
    (written_id, _, status_seen), (kept, left, status) = written, placed
    if session_stopped(status_seen if written_id is None else status):
        raise DomainError("SESSION_STOPPED")
    return kept, left


def session_stopped(status: str | None) -> bool:
    """A write took no place: was the session stopped since its slot was read (staff stopping it as it is
    booked) rather than full? The status as the row's write read it, or as SETTLE read it under the lock."""
    return status is not None and status != "open"


async def run_steps(steps, store):
    """`service.run_steps`, awaiting the store's answers."""
    answer = None
    while True:
        try:
            operation, *args = steps.send(answer)
        except StopIteration as done:
            return done.value
        answer = await getattr(store, operation)(*args)


async def book_on(conn: psycopg.AsyncConnection, now: datetime, account_id: int, slot_id: int, patient_id: int,
                  insurance_type: str, on_person=None, on_slot=None, person_id: int | None = None):
    """One booking transaction on `conn` (see `Bookings.book`)."""
    steps = booking_steps(now, account_id, slot_id, patient_id, insurance_type)
    ahead = None if person_id is None else (person_id, local(now).date(), limit_span(LimitPolicy()))
    # Not conn.transaction(): the first step begins (BEGIN_SLOT) and the last commits (BOOK_PLACE).
    try:
        return await run_steps(steps, BookingStore(conn, on_person, on_slot, ahead))
    finally:
        await rollback_quietly(conn)  # after a refusal; nothing to do once the last step committed


async def rollback_quietly(conn: psycopg.AsyncConnection) -> None:
    try:
        await conn.rollback()
    except psycopg.Error:  # a broken connection: the pool discards it on return
        log.warning("booking: rollback failed; the connection is dropped")


class Bookings:
    """The process's connections for bookings on the event loop (one pool per loop) and the transaction."""

    def __init__(self, conninfo: str, size: int, connect_args: dict | None = None, idle_ping: float = 1.0,
                 timeout: float = 10.0):
        self.conninfo = conninfo
        self.timeout = timeout
        self.size = size
        self.connect_args = connect_args or {}
        self.idle_ping = idle_ping
        self._pool: AsyncConnectionPool | None = None
        self._loop = None

    def ready(self) -> bool:
        """Opened on the running event loop (by the server's lifespan, see guahao/app.py). A loop that
        did not open it (a test client without lifespan, one loop per request) books in a thread instead:
        the pool's background tasks would outlive such a loop."""
        try:
            return self._pool is not None and self._loop is asyncio.get_running_loop()
        except RuntimeError:
            return False

    def pool(self) -> AsyncConnectionPool:
        loop = asyncio.get_running_loop()
        if self._pool is None or self._loop is not loop:
            # One pool per event loop (a server process has one; tests start several).
            self._loop = loop
            self._pool = AsyncConnectionPool(
                self.conninfo, min_size=self.size, max_size=self.size, open=False, timeout=self.timeout,
                # prepare_threshold=None: psycopg never prepares a statement of its own (the rest ping
                # would be, after 5 runs), and so never sends the DEALLOCATE ALL that its rollback() sends
                # once it has one — which would drop the booking's statements (`prepare`) too.
                kwargs=dict(self.connect_args, autocommit=True, prepare_threshold=None), configure=prepare,
                check=self._check,
                reset=self._rested)
        return self._pool

    async def open(self) -> None:
        pool = self.pool()
        if pool.closed:
            await pool.open(wait=False)

    async def close(self) -> None:
        if self._pool is not None and self._loop is asyncio.get_running_loop():
            await self._pool.close()
        self._pool = None

    async def book(self, now: datetime, account_id: int, slot_id: int, patient_id: int, insurance_type: str,
                   on_person: Callable[[int], Awaitable[None]] | None = None,
                   on_slot: Callable[[int, int], None] | None = None, person_id: int | None = None):
        """One booking transaction (see `service.booking_steps`); the caller limits how many run at once.
        `on_person(person_id)` is awaited before any rule is checked; `on_slot(slot_id, session_id)` is
        told which session the slot belongs to as soon as it is read. `person_id`: the person this process
        already knows behind the patient, locked with the slot's read (one round trip fewer)."""
        await self.open()
        async with self.pool().connection() as conn:
            return await book_on(conn, now, account_id, slot_id, patient_id, insurance_type, on_person, on_slot,
                                 person_id)

    async def _rested(self, conn: psycopg.AsyncConnection) -> None:
        conn.info_returned_at = time.monotonic()  # read by _check

    async def _check(self, conn: psycopg.AsyncConnection) -> None:
        """Ping a connection before use only when it rested `idle_ping` seconds (see db._ping_when_idle):
        at the release instant connections never rest, and a ping per booking is a round trip more."""
        returned = getattr(conn, "info_returned_at", None)
        if returned is not None and time.monotonic() - returned < self.idle_ping:
            return
        await self.ping(conn)

    async def ping(self, conn: psycopg.AsyncConnection) -> None:
        await conn.execute("SELECT 1")  # raises on a dead connection: the pool replaces it
