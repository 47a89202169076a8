"""A booking attempt the database decides, carried from its request's bytes to its answer by callbacks.

At the release instant each turn of a worker's event loop lasts ~20 ms: it answers every request that
arrived meanwhile, a hundred or more. A booking attempt through the usual way (an ASGI task: its start,
its rate-limit count, the bookings' thread's answer, its resumption) waited for about six such turns
besides its transaction. Timed inside the workers for the attempts that booked (bench/release_burst.py,
throwaway timers): ~25 ms before the attempt ran, ~45 ms for its count, ~5 ms to the bookings' thread,
~45 ms in the database, ~75 ms back to the answer — ~215 ms in all.

Here guahao serve's protocol (release/inline.py, serving.py) starts the attempt as its bytes arrive; the
rate-limit count's reply continues it where Redis's answer is read, the booking goes to the bookings' thread
at once, and the thread's outcome writes the answer in the next turn: about two turns besides the
transaction. Taken only when everything is plain: a logged-in patient, the bookings' thread on PostgreSQL,
and a rate limiter that can answer by callback (security/ratelimit.py). A patient whose person the worker
has not met yet (no refresh with their token came here first) has the person read before the count, in a
batch with the other first-timers' look-ups, so that the booking can share a batch too.
The rules are the same code as the usual way's (`booking.api`): limits first, then the gate, a turn at the
database, the transaction, the gate taught what it answered.
"""

import asyncio
import logging

from starlette.responses import Response

from guahao.booking.api import booked_answer, is_news, refusal_response
from guahao.errors import DomainError, api_error
from guahao.release.turns import turns_of
from guahao.security.guards import person_limit_of, read_person

log = logging.getLogger("guahao.direct")


class Direct:
    """One attempt; `start(done)` calls `done(response)` once, on the server's loop (perhaps at once)."""

    def __init__(self, state, now, account_id: int, slot_id: int, patient_id: int, insurance_type: str,
                 person_id: int | None, limits: list):
        self.state, self.now = state, now
        self.account_id, self.slot_id, self.patient_id = account_id, slot_id, patient_id
        self.insurance_type, self.person_id, self.limits = insurance_type, person_id, limits
        self.done = None
        self.waiting: asyncio.Task | None = None  # held: the loop keeps only weak references to tasks

    @staticmethod
    def possible(state) -> bool:
        bookings = getattr(state, "pg_bookings", None)
        return (bookings is not None and hasattr(bookings, "submit") and bookings.ready()
                and state.limiter.can_count_then())

    def start(self, done) -> None:
        self.done = done
        self.generation = self.state.gate.generation
        if self.person_id is None:
            self.waiting = asyncio.get_running_loop().create_task(self._read_person())
            return
        self.state.limiter.count_then(self.limits, self._counted)

    async def _read_person(self) -> None:
        try:
            self.person_id = await read_person(self.state, self.account_id, self.patient_id)
        except Exception as e:  # the database is away: so would the booking be
            return self._answer(api_error(e))
        if self.person_id is not None:
            self.limits = [*self.limits, person_limit_of(self.state, self.person_id)]
        # else no such patient under this account: the booking refuses it, as the usual way does
        self.state.limiter.count_then(self.limits, self._counted)

    def _counted(self, limited: DomainError | None) -> None:
        try:
            self._go_on(limited)
        except Exception as e:  # called where Redis's reply is read: never let a failure travel there
            log.exception("booking failed")
            self._answer(api_error(e))

    def _go_on(self, limited: DomainError | None) -> None:
        if limited is not None:
            return self._answer(api_error(limited))
        gate = self.state.gate
        refusal = gate.refusal(self.slot_id, self.now)
        if refusal is not None:
            return self._answer(refusal_response(refusal))
        turns = turns_of(self.state)
        if turns.take_now(self.slot_id):
            return self._submit()
        self.waiting = asyncio.get_running_loop().create_task(self._wait_for_turn(turns))

    async def _wait_for_turn(self, turns) -> None:
        gate = self.state.gate
        try:
            refusal = await turns.take(lambda: gate.refusal(self.slot_id, self.now), self.slot_id)
        except Exception as e:
            return self._answer(api_error(e))
        if refusal is not None:
            return self._answer(refusal_response(refusal))
        self._submit()

    def _submit(self) -> None:
        gate = self.state.gate
        slot_id = self.slot_id
        try:
            self.state.pg_bookings.submit(
                self.now, self.account_id, slot_id, self.patient_id, self.insurance_type, self._booked,
                on_slot=gate.remember_slot, person_id=self.person_id)
        except Exception as e:  # not handed over: the turn goes back, the client hears why
            self._give_back(False)
            self._answer(api_error(e))

    def _booked(self, outcome) -> None:
        """On the server's loop, with the bookings' thread's (concurrent) future."""
        gate = self.state.gate
        news, booked = False, None
        try:
            response, news, booked = booked_answer(gate, self.slot_id, outcome.result(), self.generation)
        except DomainError as e:
            gate.learn(self.state.db, self.slot_id, e, self.generation)
            news = is_news(e)
            response = api_error(e)
        except Exception as e:  # as the usual way's exception handlers answer it
            log.exception("booking failed")
            response = api_error(e)
        self._give_back(news)
        self._answer(response)
        if booked is not None:
            gate.publish_booked_soon(*booked)

    def _give_back(self, news: bool) -> None:
        turns_of(self.state).give_back(news, self.slot_id)

    def _answer(self, response: Response) -> None:
        done, self.done = self.done, None
        if done is not None:
            done(response)

