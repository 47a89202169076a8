"""Turns at the database for booking attempts, which a waiting attempt leaves as soon as the gate refuses it.

A process lets as many bookings at the database at once as it has connections; the rest wait their turn.
At the release instant hundreds wait, and most of them become sure losers while they wait: the session
they want fills up, or the number they want is taken. A plain FIFO limiter makes each of them wait for a
connection only to be refused by the gate afterwards, so their answer comes seconds late. Here the gate is
asked again for every waiter whenever a booking of this process filled a session or found it full, or the
gate has heard another process's bookings (`gate_heard`), and a waiter it now refuses leaves at once with
that refusal; a free turn goes to the first waiter the gate does
not refuse (one that wants a number just taken is refused on the way).

One attempt per number at a time: while this process's booking of a number is at the database, another
attempt at the same number is answered SLOT_BUSY at once — the number is being booked by someone else,
which is true, and that booking almost always succeeds. Waiting for its outcome instead kept the second
patient as long as the first (the slowest answers of the release instant, bench/release_burst.py) only to
tell them SLOT_TAKEN. Should the first fail (a limit of that patient), the number is free again and the
next attempt at it goes on. A retry carrying an Idempotency-Key still waits for the outcome instead: the
answer it is owed is the first attempt's, which the database gives it afterwards.

Everything runs on the event loop, so there is no lock: a waiter is a future resolved with its outcome
(None: a turn; otherwise the refusal).
"""

import asyncio
from collections import deque
from collections.abc import Callable

from guahao.errors import DomainError


class Turns:
    def __init__(self, size: int):
        self.size = size
        self.free = size
        self._loop = asyncio.get_running_loop()
        self._waiting: deque[tuple[asyncio.Future, Callable[[], object | None]]] = deque()
        # number -> resolved when this process's booking of it leaves the database
        self._busy: dict[object, asyncio.Future] = {}
        self._recheck_due = False

    @property
    def queued(self) -> int:
        """Attempts waiting for a turn."""
        return len(self._waiting)

    def take_now(self, key: object) -> bool:
        """Take a turn without waiting, when one is free, nobody waits for one, and no booking of `key` of this
        process is at the database; False otherwise (then `take` answers)."""
        if self.free and not self._waiting and key not in self._busy:
            self.free -= 1
            self._busy[key] = self._loop.create_future()
            return True
        return False

    async def take(self, refused: Callable[[], object | None], key: object = None, busy: bool = True):
        """Wait for a turn; returns None once it has one, or the first refusal `refused()` gives meanwhile.

        `key` (the number wanted): while this process's booking of the same number is at the database, the
        answer is a SLOT_BUSY refusal, before or after waiting for a turn — or, with `busy` False, the
        attempt waits for that booking's outcome and then tries again."""
        while True:
            refusal = refused()
            if refusal is not None:
                return refusal
            flight = self._busy.get(key) if key is not None else None
            if flight is not None:
                if busy:
                    return DomainError("SLOT_BUSY")
                await asyncio.wait({flight})  # not `await flight`: a cancelled waiter must not cancel it
                continue
            refusal = await self._turn(refused)
            if refusal is not None:
                return refusal
            if key is None:
                return None
            if key in self._busy:  # another attempt took the number to the database while we queued
                self.give_back(False)
                if busy:
                    return DomainError("SLOT_BUSY")
                continue
            self._busy[key] = self._loop.create_future()
            return None

    async def _turn(self, refused: Callable[[], object | None]):
        if self.free and not self._waiting:
            self.free -= 1
            return None
        waiter = self._loop.create_future()
        entry = (waiter, refused)
        self._waiting.append(entry)
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled() and waiter.result() is None:
                self._hand_on()  # granted a turn just before the cancel: the next waiter gets it
            elif entry in self._waiting:
                self._waiting.remove(entry)
            raise

    def give_back(self, news: bool, key: object = None) -> None:
        """Return a turn; `news`: the gate may now refuse many waiters (a session was filled or found
        full), so all of them are asked again. The turn goes to the first waiter the gate does not refuse
        (a number just taken, say, refuses the ones before it). `key`: the number this turn had at the
        database, free for another attempt now."""
        flight = self._busy.pop(key, None) if key is not None else None
        if flight is not None:
            flight.set_result(None)
        if news:
            self._refuse_waiters()
        self._hand_on()

    def gate_heard(self) -> None:
        """From any thread: the gate took in another process's bookings. Waiters it now refuses (a number
        booked there) leave at once instead of at the head of the queue; checked once per loop turn."""
        if not self._recheck_due:
            self._recheck_due = True
            self._loop.call_soon_threadsafe(self._recheck)

    def _recheck(self) -> None:
        self._recheck_due = False
        if self._waiting:
            self._refuse_waiters()

    def _hand_on(self) -> None:
        while self._waiting:
            waiter, refused = self._waiting.popleft()
            if waiter.done():
                continue
            refusal = _ask(waiter, refused)
            if refusal is _FAILED:
                continue
            waiter.set_result(refusal)
            if refusal is None:
                return
        self.free += 1

    def _refuse_waiters(self) -> None:
        """Every waiter the gate now refuses leaves with its refusal; the others keep their place."""
        keep = deque()
        for entry in self._waiting:
            waiter, refused = entry
            if waiter.done():
                continue
            refusal = _ask(waiter, refused)
            if refusal is None:
                keep.append(entry)
            elif refusal is not _FAILED:
                waiter.set_result(refusal)
        self._waiting = keep


_FAILED = object()


def _ask(waiter: asyncio.Future, refused: Callable[[], object | None]):
    """The gate's answer for a waiter, asked by whoever gives a turn back: should the gate fail, that
    waiter fails (its caller answers it as any failure), not the booking giving its turn back."""
    try:
        return refused()
    except Exception as e:
        waiter.set_exception(e)
        return _FAILED


def turns_of(state) -> Turns:
    """The process's turns, one per database connection a booking may use (per event loop: tests run
    several)."""
    loop = asyncio.get_running_loop()
    turns = getattr(state, "booking_turns", None)
    if turns is None or turns[0] is not loop:
        # Bookings carried several per transaction (booking/batch.py) may be under way several per connection.
        size = getattr(getattr(state, "pg_bookings", None), "in_flight", state.settings.db_connections)
        turns = state.booking_turns = (loop, Turns(size))
        gate = getattr(state, "gate", None)
        if gate is not None:
            gate.on_heard = turns[1].gate_heard
    return turns[1]
