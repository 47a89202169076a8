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
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import Future

from guahao.booking.pg_async import Bookings


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:  # the server's loop is uvloop where installed; a plain loop serves as well
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


class BookingsInThread:
    """`Bookings` whose pool and transactions run on a loop in a thread of their own (one per process)."""

    def __init__(self, bookings: Bookings):
        self.inner = bookings
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._opened_on = None  # the server loop that opened it: the only one that books through it

    async def open(self) -> None:
        if self._thread is None:
            self._loop = _new_loop()
            self._thread = threading.Thread(target=self._loop.run_forever, name="guahao-bookings", daemon=True)
            self._thread.start()
        await self._on_thread(self.inner.open())
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
        return await self._on_thread(self.inner.book(now, account_id, slot_id, patient_id, insurance_type,
                                                     on_person, on_slot, person_id))

    async def _on_thread(self, coro):
        future: Future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return await asyncio.wrap_future(future)  # cancelling the caller cancels the coroutine there
