"""Several bookings in one transaction: two round trips for up to `size` bookings instead of each.

At the release instant a worker's bookings queue for its few database connections, and each transaction is
two round trips long whatever it carries. Here a connection takes every pending booking it can (distinct
persons and numbers, the person known ahead) and carries them out together:

1. `BEGIN`, then each booking's slot read, person lock and visits (persons in id order, as every batch
   locks them: two batches never wait for each other in a circle) — one message;
2. each booking's rules, as `service.booking_steps` has them, in Python;
3. the sessions of those that passed locked in id order, then each booking row with its session's place —
   `ON CONFLICT DO NOTHING` stands for the unique indexes' refusal, so one booking's lost number does not
   abort the others — and `COMMIT`: one message.

Anything unexpected (a deadlock with another kind of transaction, a broken connection) rolls the batch back
and books each of its bookings alone, as before.
"""

import asyncio
from dataclasses import dataclass, field
import psycopg
from psycopg.rows import namedtuple_row

from guahao.booking.pg_async import (_LOCK, _NEAR, _SLOT, BOOKING_COLUMNS, BookingStore, _ACTIVE, read_slot_lock,
                                     run_steps, slot_params)
from guahao.booking.service import booking_steps
from guahao.clock import local
from guahao.db import stored_utc
from guahao.errors import DomainError

LOCK_SESSIONS = "SELECT id FROM clinic_sessions WHERE id = ANY(%(ids)s) ORDER BY id FOR UPDATE"
# The sessions are locked by the batch (LOCK_SESSIONS) before this runs: `room` reads the counter no other
# transaction can change until the commit.
PLACE = f"""
WITH room AS (
    SELECT 1 FROM clinic_sessions WHERE id = %(session_id)s AND booked < capacity AND status = 'open'),
ins AS (
    INSERT INTO bookings ({', '.join(BOOKING_COLUMNS)})
    SELECT {', '.join(f'%({c})s' for c in BOOKING_COLUMNS)} FROM room
    ON CONFLICT DO NOTHING RETURNING id),
taken AS (
    UPDATE clinic_sessions SET booked = booked + 1
    WHERE id = %(session_id)s AND EXISTS (SELECT 1 FROM ins) RETURNING capacity - booked AS places_left)
SELECT (SELECT id FROM ins), (SELECT places_left FROM taken), EXISTS (SELECT 1 FROM room)"""
WHICH_CONFLICT = f"SELECT EXISTS (SELECT 1 FROM bookings WHERE slot_id = %(slot_id)s AND status IN ({_ACTIVE}))"


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
    write: dict | None = field(default=None)
    written: asyncio.Future | None = field(default=None)

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
    """A booking store whose slot step was read by the batch, and whose last step waits for the batch."""

    def __init__(self, conn, item: Item, read, arrived: asyncio.Future):
        super().__init__(conn, None, item.on_slot, None)
        self.item, self.read, self.arrived = item, read, arrived

    async def slot_for_booking(self, slot_id: int, account_id: int, patient_id: int):
        return self._slot_read(*self.read)

    async def book_place(self, values: dict):
        item = self.item
        item.write = {c: values.get(c) for c in BOOKING_COLUMNS}
        item.write["created_at"] = stored_utc(values["created_at"])
        item.written = asyncio.get_running_loop().create_future()
        self.arrived.set_result(None)
        return await item.written


async def run_batch(conn: psycopg.AsyncConnection, batch: list, span: int) -> None:
    """Book `batch` in one transaction and set each item's future. A psycopg error leaves the futures
    unset (the caller rolls back and books each alone)."""
    batch = sorted(batch, key=lambda i: i.person_id)
    params = [slot_params(it.slot_id, it.account_id, it.patient_id, (it.person_id, local(it.now).date(), span))
              for it in batch]
    async with psycopg.AsyncClientCursor(conn, row_factory=namedtuple_row) as cur:
        # BEGIN_SLOT_LOCK's statements for each booking, in one message.
        await cur.execute("; ".join(["BEGIN", *(cur.mogrify(q, p) for p in params for q in (_SLOT, _LOCK, _NEAR))]))
        reads = [(p, *await read_slot_lock(cur)) for p in params]
    loop = asyncio.get_running_loop()
    arrived = [loop.create_future() for _ in batch]
    tasks = [asyncio.ensure_future(run_steps(it.steps(), _Store(conn, it, read, a)))
             for it, read, a in zip(batch, reads, arrived)]
    try:
        for task, a in zip(tasks, arrived):
            await asyncio.wait({task, a}, return_when=asyncio.FIRST_COMPLETED)
        writing = sorted((it for it, t in zip(batch, tasks) if not t.done()), key=lambda i: i.write["session_id"])
        results = []
        if writing:
            async with psycopg.AsyncClientCursor(conn) as cur:
                ids = sorted({it.write["session_id"] for it in writing})
                parts = [cur.mogrify(LOCK_SESSIONS, dict(ids=ids))]
                parts += [cur.mogrify(PLACE, it.write) for it in writing]
                await cur.execute("; ".join(parts) + "; COMMIT")
                for _ in writing:
                    cur.nextset()
                    results.append(await cur.fetchone())
        else:
            await conn.rollback()  # every one refused: only their person locks were taken
    except (psycopg.Error, asyncio.CancelledError):
        for t in tasks:
            t.cancel()
        raise
    conflicts = [it for it, (bid, _, room) in zip(writing, results) if bid is None and room]
    for it, (bid, left, room) in zip(writing, results):
        if bid is not None:
            it.written.set_result((bid, left))
        elif not room:
            it.written.set_result((None, None))  # the steps answer SESSION_FULL
    if conflicts:  # a unique index refused these rows (the other transactions have committed by now)
        async with psycopg.AsyncClientCursor(conn) as cur:
            for it in conflicts:
                await cur.execute(WHICH_CONFLICT, dict(slot_id=it.slot_id))
                held = (await cur.fetchone())[0]
                it.written.set_exception(DomainError("SLOT_TAKEN" if held else "DUPLICATE_DEPARTMENT_DAY"))
    for it, t in zip(batch, tasks):
        try:
            result = await t
        except Exception as e:  # a refusal (DomainError) or a failure of that booking's own query
            if not it.future.done():
                it.future.set_exception(e)
        else:
            if not it.future.done():
                it.future.set_result(result)

