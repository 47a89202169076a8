"""Several bookings in one transaction: two round trips for up to `size` bookings instead of each.

At the release instant a worker's bookings queue for its few database connections, and each transaction is
two round trips long whatever it carries. Here a connection takes every pending booking it can (distinct
persons and numbers, the person known ahead) and carries them out together:

1. `BEGIN`, the batch's persons locked in one statement (in id order, as every batch locks them: two
   batches never wait for each other in a circle), then every booking's slot and its person's visits in
   one more, read under those locks — one message, three results (pg_async.LOCK_PERSONS,
   SLOTS_AND_VISITS). Each result costs the bookings' thread the interpreter once or twice (psycopg reads
   it outside the GIL) and, at the release instant, a wait to get it back from the server's loop: with a
   slot read, a lock and visits per booking (25 results for 8), this round trip took 12–17 ms at T, now
   5–6 ms (bench/release_burst.py, timed inside the workers). The same statement takes, without waiting,
   a transaction-scoped advisory lock on each booking's number: a number another process's batch holds
   is answered SLOT_BUSY at once (release/turns.py does the same within a process);
2. each booking's rules, as `service.booking_steps` has them, in Python;
3. the booking rows of those that passed written (`ON CONFLICT DO NOTHING` stands for the unique indexes'
   refusal, so one booking's lost number does not abort the others), then their sessions locked in id
   order and their places taken, the rows beyond a session's room deleted — and `COMMIT`: one message.
   The rows go in before the sessions' locks: every batch at the release instant wants the same few
   sessions, and with the rows written under the locks, the batches queued for them one at a time
   (pg_stat_activity during the burst: 10–15 of the 16 connections waiting on a session row).

Anything unexpected (a deadlock with another kind of transaction, a broken connection) rolls the batch back
and books each of its bookings alone, as before.
"""

import asyncio
import functools
import inspect
from collections import namedtuple
from dataclasses import dataclass
import psycopg

from guahao.booking.pg_async import (_ACTIVE, _INSERT_BOOKING, _LOCK_PERSONS, _LOCK_SESSIONS, _SETTLE,
                                     _SLOTS_AND_VISITS, BookingStore, array_literal, booking_row, placed_or_refused,
                                     slot_params)
from guahao.booking.service import booking_steps
from guahao.clock import local
from guahao.errors import DomainError

WHICH_CONFLICT = f"SELECT DISTINCT slot_id FROM bookings WHERE slot_id = ANY(%(slot_ids)s) AND status IN ({_ACTIVE})"


@dataclass
class Item:
    """One booking waiting for a connection; `future` gets its view or its refusal."""
    now: object
    account_id: int
    slot_id: int
    patient_id: int
    insurance_type: str
    on_person: object
    on_slot: object
    person_id: int | None
    future: asyncio.Future

    def batchable(self) -> bool:
        return self.person_id is not None and self.on_person is None

    def steps(self):
        return booking_steps(self.now, self.account_id, self.slot_id, self.patient_id, self.insurance_type)


def take(pending: list, size: int) -> list:
    """The oldest pending booking and, when it can share, the next ones that can (distinct persons and
    numbers); they leave `pending`."""
    first = pending.pop(0)
    if not first.batchable():
        return [first]
    batch, persons, slots, rest = [first], {first.person_id}, {first.slot_id}, []
    for item in pending:
        if (len(batch) < size and item.batchable() and item.person_id not in persons
                and item.slot_id not in slots):
            batch.append(item)
            persons.add(item.person_id)
            slots.add(item.slot_id)
        else:
            rest.append(item)
    pending[:] = rest
    return batch


class _Store(BookingStore):
    """Answers a batched booking's steps from the batch's first round trip, as plain calls: no step waits
    for the event loop unless it must ask the database (a visit card; a person other than the one expected).

    Each wait for the loop costs a batch dearly at the release instant: the bookings' loop shares the
    interpreter with the server's, which is busy answering hundreds of requests, and gets it back only
    every switch interval (5 ms). Run as one task per booking, the rules of a batch of 8 took 10–60 ms at T
    (and ~1 ms a second later), longer than either of its round trips."""

    def __init__(self, conn, item: Item, read):
        super().__init__(conn, None, item.on_slot, None)
        self.read = read

    def slot_for_booking(self, slot_id: int, account_id: int, patient_id: int):
        return self._slot_read(*self.read)

    def person_known(self, person_id: int) -> None:
        return None  # a batched booking owes no rate limit (Item.batchable)

    def lock_person(self, person_id: int, today, around, span: int):
        taken = self.locked_with_slot(person_id, today, around, span)
        return taken if taken is not None else super().lock_person(person_id, today, around, span)


async def _to_write(steps, store: _Store) -> dict:
    """Run `steps` up to their write and return its values; a refusal raises."""
    answer = None
    while True:
        operation, *args = steps.send(answer)
        if operation == "book_place":
            return args[0]
        answer = getattr(store, operation)(*args)
        if inspect.isawaitable(answer):
            answer = await answer


def _after_write(steps, written: tuple):
    """The booking's outcome once its write answered (booking id, places left): its view, or the
    refusal the steps raise (SESSION_FULL when no place was left)."""
    try:
        steps.send(written)
    except StopIteration as done:
        return done.value
    except DomainError as e:
        return e
    raise RuntimeError("booking steps went on after their write")


async def run_batch(conn: psycopg.AsyncConnection, batch: list, span: int) -> None:
    """Book `batch` in one transaction and set each item's future. A psycopg error leaves the futures
    not yet set unset (the caller rolls back and books each of those alone)."""
    batch = sorted(batch, key=lambda i: i.person_id)
    params = [slot_params(it.slot_id, it.account_id, it.patient_id, (it.person_id, local(it.now).date(), span))
              for it in batch]
    reads, free = await _read(conn, params)
    outcomes: dict[int, object] = {}  # id(item) -> view or refusal
    writing = []  # (item, its steps, its row)
    for it, read, number_free in zip(batch, reads, free):
        if not number_free:
            # Another process's batch has this number at the database: its insert would wait on the unique
            # index behind that one, holding up this whole batch, and nearly always end SLOT_TAKEN.
            outcomes[id(it)] = DomainError("SLOT_BUSY")
            continue
        steps = it.steps()
        try:
            values = await _to_write(steps, _Store(conn, it, read))
        except DomainError as e:
            outcomes[id(it)] = e
            continue
        writing.append((it, steps, booking_row(values)))
    writing.sort(key=lambda w: w[2]["session_id"])
    if writing:
        settled = await _write(conn, [row for _, _, row in writing])
    else:
        await conn.rollback()  # every one refused: only their person locks were taken
        settled = ([], [])
    conflicts = []
    for (it, steps, _), written, placed in zip(writing, *settled):
        if written[0] is None and written[1]:
            conflicts.append(it)  # a unique index refused the row
            continue
        try:
            outcomes[id(it)] = _after_write(steps, placed_or_refused(written, placed))
        except DomainError as e:
            outcomes[id(it)] = e
    # Everyone else is answered now: the winners of a batch do not wait for its conflicts' look-up.
    _answer([it for it in batch if id(it) in outcomes], outcomes)
    if conflicts:  # which index (the other transactions have committed by now): one query for all
        async with psycopg.AsyncClientCursor(conn) as cur:
            await cur.execute(WHICH_CONFLICT, dict(slot_ids=[it.slot_id for it in conflicts]))
            held = {row[0] for row in await cur.fetchall()}
        for it in conflicts:
            outcomes[id(it)] = DomainError("SLOT_TAKEN" if it.slot_id in held else "DUPLICATE_DEPARTMENT_DAY")
        _answer(conflicts, outcomes)


async def _write(conn: psycopg.AsyncConnection, rows: list[dict]) -> tuple[list, list]:
    """The batch's second round trip, which commits: each row written (INSERT_BOOKING), then their sessions
    locked (LOCK_SESSIONS) and their places taken (SETTLE). Per row, in order: (id written, room as last
    committed, status as last committed) and (id kept, places left after it, status under the lock)."""
    async with psycopg.AsyncClientCursor(conn) as cur:
        parts = [cur.mogrify(_INSERT_BOOKING, row) for row in rows]
        parts.append(cur.mogrify(_LOCK_SESSIONS, dict(ids=array_literal(sorted({r["session_id"] for r in rows})))))
        parts.append(cur.mogrify(_SETTLE, dict(slot_ids=array_literal([r["slot_id"] for r in rows]))))
        await cur.execute("; ".join(parts) + "; COMMIT")
        inserted = []
        for _ in rows:
            inserted.append(await cur.fetchone())
            cur.nextset()
        cur.nextset()  # past the sessions' lock
        settled = await cur.fetchall()
    return inserted, settled


async def _read(conn: psycopg.AsyncConnection, params: list[dict]) -> list[tuple]:
    """The batch's first round trip: BEGIN, its persons' locks (LOCK_PERSONS), then its slots and visits
    (SLOTS_AND_VISITS) — three results for the whole batch. Each booking's (params, slot row, person lock
    row, visits), as `BookingStore._slot_read` takes them."""
    arrays = {name: array_literal([p[key] for p in params])
              for name, key in (("pids", "pid"), ("todays", "today"), ("slot_ids", "slot_id"),
                                ("account_ids", "account_id"), ("patient_ids", "patient_id"), ("los", "lo"))}
    async with psycopg.AsyncClientCursor(conn) as cur:
        await cur.execute(f"BEGIN; {_LOCK_PERSONS}; {_SLOTS_AND_VISITS}", arrays)
        cur.nextset()
        bans = {pid: (ban,) for pid, ban in await cur.fetchall()}
        cur.nextset()
        slot_row = _slot_row(tuple(c.name for c in cur.description[:-4]))
        rows = await cur.fetchall()
    reads, free = [], []
    for p, row in zip(params, rows):
        *slot, hospitals, departments, dates, number_free = row
        visits = list(zip(hospitals, departments, dates)) if hospitals else []
        reads.append((p, slot_row(*slot) if slot[0] is not None else None, bans.get(p["pid"]), visits))
        free.append(number_free)
    return reads, free


@functools.cache
def _slot_row(names: tuple[str, ...]):
    return namedtuple("SlotRow", names)


def _answer(items: list, outcomes: dict) -> None:
    for it in items:
        outcome = outcomes[id(it)]
        if it.future.done():
            continue
        if isinstance(outcome, BaseException):
            it.future.set_exception(outcome)
        else:
            it.future.set_result(outcome)
