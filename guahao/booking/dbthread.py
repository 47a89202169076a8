"""The bookings' database round trips on an event loop of their own thread.

At the release instant the server's event loop is never idle: each turn of it answers a hundred or more
requests, nearly all sure losers, and a booking's transaction (two round trips, guahao/booking/pg_async.py)
waited for a whole turn after each answer from PostgreSQL before sending its next statement — ~20 ms a
round trip, while the winners queued for the database's few connections. Here the connections live on a
loop in a thread of their own: an answer from the database is taken up as soon as that thread gets the
interpreter (the loop's thread gives it up at least every `sys.getswitchinterval()`), and only the
finished booking goes back to the server's loop.

Everything else is `Bookings` as it was: same statements, same pool, same rollback on a refusal; a
cancelled caller cancels the transaction.
"""

import asyncio
import collections
import logging
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import Future

import psycopg

from guahao.booking import batch as batching
from guahao.booking.pg_async import Bookings, book_on, rollback_quietly
from guahao.booking.rules import LimitPolicy, limit_span

log = logging.getLogger("guahao.booking")


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:  # the server's loop is uvloop where installed; a plain loop serves as well
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


class BookingsInThread:
    """`Bookings` whose pool and transactions run on a loop in a thread of their own (one per process)."""

    def __init__(self, bookings: Bookings, batch: int = 1):
        """`batch` > 1: each connection carries up to that many bookings per transaction (booking/batch.py),
        taken by one task per connection from the bookings waiting in order of arrival."""
        self.inner = bookings
        self.batch = max(1, batch)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._opened_on = None  # the server loop that opened it: the only one that books through it
        self._pending: list = []
        self._wake: asyncio.Event | None = None
        self._runners: list = []
        self._done: collections.deque = collections.deque()  # (then, outcome) for `submit`'s callers

    @property
    def in_flight(self) -> int:
        """How many bookings may be under way at once (the worker's turns, release/turns.py)."""
        return self.inner.size * self.batch

    async def open(self) -> None:
        if self._thread is None:
            self._loop = _new_loop()
            self._thread = threading.Thread(target=self._loop.run_forever, name="guahao-bookings", daemon=True)
            self._thread.start()
        await self._on_thread(self.inner.open())
        if self.batch > 1 and not self._runners:
            await self._on_thread(self._start_runners())
        self._opened_on = asyncio.get_running_loop()

    def ready(self) -> bool:
        try:
            return self._opened_on is asyncio.get_running_loop()
        except RuntimeError:
            return False

    async def close(self) -> None:
        loop, thread = self._loop, self._thread
        if thread is None:
            return
        try:
            await self._on_thread(self._stop_runners())
            await self._on_thread(self.inner.close())
        finally:
            self._loop = self._thread = self._opened_on = None
            loop.call_soon_threadsafe(loop.stop)
            await asyncio.get_running_loop().run_in_executor(None, thread.join, 5)
            if not thread.is_alive():
                loop.close()

    async def book(self, now, account_id: int, slot_id: int, patient_id: int, insurance_type: str,
                   on_person: Callable[[int], Awaitable[None]] | None = None,
                   on_slot: Callable[[int, int], None] | None = None, person_id: int | None = None):
        """As `Bookings.book`; `on_person` is awaited on the caller's loop (it counts a rate limit with that
        loop's Redis connections), `on_slot` is called on the bookings' thread (it must be thread-safe)."""
        if on_person is not None:
            caller, counted = asyncio.get_running_loop(), on_person

            async def on_person(person_id: int) -> None:
                await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(counted(person_id), caller))
        return await self._on_thread(self._booking(now, account_id, slot_id, patient_id, insurance_type, on_person,
                                                   on_slot, person_id))

    def submit(self, now, account_id: int, slot_id: int, patient_id: int, insurance_type: str, then,
               on_slot=None, person_id: int | None = None) -> None:
        """`book` for a caller that is not a coroutine (release/direct.py): `then(outcome)` is called on the
        caller's loop with the booking's concurrent future, done."""
        caller = asyncio.get_running_loop()
        outcome = asyncio.run_coroutine_threadsafe(
            self._booking(now, account_id, slot_id, patient_id, insurance_type, None, on_slot, person_id), self._loop)

        def finished(f) -> None:  # on the bookings' thread
            self._done.append((then, f))
            caller.call_soon_threadsafe(self.poll)
        outcome.add_done_callback(finished)

    @property
    def due(self) -> bool:
        return bool(self._done)

    def poll(self) -> None:
        """On the caller's loop: call `then` for each booking finished so far. The loop calls it a turn after
        the booking finished; guahao serve's protocol calls it between two requests' reads (serving.py), as
        at the release instant a turn lasts ~20 ms."""
        while self._done:
            try:
                then, outcome = self._done.popleft()
            except IndexError:  # taken by a poll the last one's answer led to
                return
            try:
                then(outcome)
            except Exception:
                log.exception("a booking's caller failed")

    def _booking(self, now, account_id, slot_id, patient_id, insurance_type, on_person, on_slot, person_id):
        """The booking's coroutine, for the bookings' thread: queued for a batch, or a transaction of its own."""
        if self.batch > 1:
            return self._queued(now, account_id, slot_id, patient_id, insurance_type, on_person, on_slot, person_id)
        return self.inner.book(now, account_id, slot_id, patient_id, insurance_type, on_person, on_slot, person_id)

    # --- on the bookings' thread ------------------------------------------------------------------------

    async def _start_runners(self) -> None:
        self._wake = asyncio.Event()
        self._runners = [asyncio.ensure_future(self._runner()) for _ in range(self.inner.size)]

    async def _stop_runners(self) -> None:
        for r in self._runners:
            r.cancel()
        await asyncio.gather(*self._runners, return_exceptions=True)
        self._runners = []

    async def _queued(self, now, account_id, slot_id, patient_id, insurance_type, on_person, on_slot, person_id):
        item = batching.Item(now, account_id, slot_id, patient_id, insurance_type, on_person, on_slot, person_id,
                             asyncio.get_running_loop().create_future())
        self._pending.append(item)
        self._wake.set()
        return await item.future  # a cancelled caller cancels it: a booking not yet begun is skipped

    async def _runner(self) -> None:
        span = limit_span(LimitPolicy())
        while True:
            self._pending[:] = [i for i in self._pending if not i.future.done()]
            if not self._pending:
                self._wake.clear()
                await self._wake.wait()
                continue
            batch = batching.take(self._pending, self.batch)
            try:
                async with self.inner.pool().connection() as conn:
                    if len(batch) == 1:
                        await self._alone(conn, batch[0])
                        continue
                    try:
                        await batching.run_batch(conn, batch, span)
                    except psycopg.Error as e:
                        log.warning("booking: a batch of %d failed (%s); booking each alone", len(batch),
                                    type(e).__name__)
                        await rollback_quietly(conn)
                        for item in batch:
                            if not item.future.done():
                                await self._alone(conn, item)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # no connection (database away): each waiting caller gets the error
                for item in batch:
                    if not item.future.done():
                        item.future.set_exception(e)

    async def _alone(self, conn, item) -> None:
        task = asyncio.ensure_future(book_on(conn, item.now, item.account_id, item.slot_id, item.patient_id,
                                             item.insurance_type, item.on_person, item.on_slot, item.person_id))
        # The caller went away: its transaction is rolled back (book_on's finally), as on the caller's loop.
        item.future.add_done_callback(lambda f: task.cancel() if f.cancelled() else None)
        await asyncio.wait({task})
        if item.future.done():
            return
        if task.cancelled():
            item.future.cancel()
        elif task.exception() is not None:
            item.future.set_exception(task.exception())
        else:
            item.future.set_result(task.result())

    async def _on_thread(self, coro):
        future: Future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return await asyncio.wrap_future(future)  # cancelling the caller cancels the coroutine there
