"""Turns at the database for booking attempts, which a waiting attempt leaves as soon as the gate refuses it.

A process lets as many bookings at the database at once as it has connections; the rest wait their turn.
At the release instant hundreds wait, and most of them become sure losers while they wait: the session
they want fills up, or the number they want is taken. A plain FIFO limiter makes each of them wait for a
connection only to be refused by the gate afterwards, so their answer comes seconds late. Here a waiter is
woken when something it may care about happened — a turn is free, or a booking took a place or found a
session full — asks the gate again, and leaves at once with the refusal if it now has one.
"""

import asyncio
from collections.abc import Callable


class Turns:
    def __init__(self, size: int):
        self.size = size
        self.free = size
        self._cond = asyncio.Condition()
        # number -> resolved when this process's booking of it leaves the database
        self._busy: dict[object, asyncio.Future] = {}
        self.queued = 0  # attempts waiting in `_turn`

    def take_now(self, key: object) -> bool:
        """Take a turn without waiting, when one is free, nobody waits for one, and no booking of `key` of this
        process is at the database; False otherwise (then `take` waits)."""
        if self.free and not self.queued and key not in self._busy:
            self.free -= 1
            self._busy[key] = asyncio.get_running_loop().create_future()
            return True
        return False

    async def take(self, refused: Callable[[], object | None], key: object = None):
        """Wait for a turn; returns None once it has one, or the first refusal `refused()` gives meanwhile.

        `key` (the number wanted): while this process's booking of the same number is at the database, a
        second attempt waits for its outcome instead of a turn — when it books, the gate refuses the rest
        at once (SLOT_TAKEN); when it fails (a limit of that patient, say), the next one tries."""
        # At the release instant most attempts arrive already refused: answered without the lock.
        refusal = refused()
        if refusal is not None:
            return refusal
        while True:
            flight = self._busy.get(key) if key is not None else None
            if flight is not None:
                refusal = refused()
                if refusal is not None:
                    return refusal
                await asyncio.wait({flight})  # not `await flight`: a cancelled waiter must not cancel it
                continue
            refusal = await self._turn(refused)
            if refusal is not None:
                return refusal
            if key is None:
                return None
            if key in self._busy:  # another attempt took the number to the database while we queued
                await self.give_back(False)
                continue
            self._busy[key] = asyncio.get_running_loop().create_future()
            return None

    async def _turn(self, refused: Callable[[], object | None]):
        async with self._cond:
            while True:
                refusal = refused()
                if refusal is not None:
                    if self.free:  # we may have been woken for this turn: hand it on
                        self._cond.notify(1)
                    return refusal
                if self.free:
                    self.free -= 1
                    return None
                self.queued += 1
                try:
                    await self._cond.wait()
                except asyncio.CancelledError:
                    if self.free:  # cancelled right after being woken: hand the wake-up on
                        self._cond.notify(1)
                    raise
                finally:
                    self.queued -= 1

    async def give_back(self, news: bool, key: object = None) -> None:
        """Return a turn; `news`: the gate may now refuse many waiters (a session was filled or found
        full), so all of them look again; otherwise the next waiter gets the turn (and leaves it to the
        next if the gate refuses it, a number just taken say). Attempts waiting for `key` look again."""
        flight = self._busy.pop(key, None) if key is not None else None
        if flight is not None:
            flight.set_result(None)
        async with self._cond:
            self.free += 1
            if news:
                self._cond.notify_all()
            else:
                self._cond.notify(1)


def turns_of(state) -> Turns:
    """The process's turns, one per database connection a booking may use (per event loop: tests run
    several)."""
    loop = asyncio.get_running_loop()
    turns = getattr(state, "booking_turns", None)
    if turns is None or turns[0] is not loop:
        # Bookings carried several per transaction (booking/batch.py) may be under way several per connection.
        size = getattr(getattr(state, "pg_bookings", None), "in_flight", state.settings.db_connections)
        turns = state.booking_turns = (loop, Turns(size))
    return turns[1]
