"""The rate limits applied at the doors scalpers push on: booking attempts and logins.

Counted before any work is done, so a flood costs a Redis round trip, not a database transaction.
Schedule and catalog reads are never limited: people refresh them by hand at release time.
"""

import asyncio
import logging

from anyio import to_thread
from sqlalchemy import select

from guahao.security.clientip import client_address
from guahao.security.ratelimit import limit_all

log = logging.getLogger("guahao.guards")


def _booking_limits(request, account_id: int, patient_id: int | None):
    return booking_limits_of(request.app.state, client_address(request), account_id, patient_id)


def booking_limits_of(state, address: str | None, account_id: int, patient_id: int | None):
    """The limits a booking attempt counts under, and whether the per-person one is among them (False: the
    person behind the patient is not known to this process yet)."""
    settings = state.settings
    limits = [(f"book-ip:{address}", settings.rate_booking_ip),
              (f"book-account:{account_id}", settings.rate_booking_account)]
    person_id = _people_of(state).get((account_id, patient_id)) if patient_id else None
    if person_id is not None:
        limits.append(person_limit_of(state, person_id))
    return limits, person_id is not None or not patient_id


def _person_limit(request, person_id: int) -> tuple[str, str]:
    return person_limit_of(request.app.state, person_id)


def remember_person(state, account_id: int, patient_id: int, person_id: int) -> None:
    # A patient row never changes person: remembered for this process's later attempts.
    _people_of(state)[(account_id, patient_id)] = person_id


def person_limit_of(state, person_id: int) -> tuple[str, str]:
    # One person added under many accounts (a scalper's farm) still shares one budget.
    return f"book-person:{person_id}", state.settings.rate_booking_person


def booking_attempt(request, account_id: int, patient_id: int | None) -> bool:
    """Per client address, per account, and per person (the ID number behind the patient, A3).

    Never reads the database: when this process does not know the person behind the patient yet, the
    per-person limit is left owed and this returns False; the booking then counts it with `person_attempt`
    as soon as its first statement has read the person, before it writes anything, or, when the release
    gate refuses the attempt, `person_attempt_refused` counts it before the answer."""
    if not request.app.state.limiter.enabled:
        return True
    limits, person_counted = _booking_limits(request, account_id, patient_id)
    limit_all(request, limits)
    return person_counted


async def booking_attempt_async(request, account_id: int, patient_id: int | None) -> bool:
    """`booking_attempt` on the event loop: the Redis round trip does not block it."""
    limiter = request.app.state.limiter
    if not limiter.enabled:
        return True
    limits, person_counted = _booking_limits(request, account_id, patient_id)
    await limiter.hit_all_async(limits)
    return person_counted


def person_attempt(request, account_id: int, patient_id: int, person_id: int) -> None:
    """The per-person limit owed by `booking_attempt`, once the booking has read the person."""
    remember_person(request.app.state, account_id, patient_id, person_id)
    limit_all(request, [_person_limit(request, person_id)])


async def person_attempt_async(request, account_id: int, patient_id: int, person_id: int) -> None:
    """`person_attempt` on the event loop."""
    remember_person(request.app.state, account_id, patient_id, person_id)
    await request.app.state.limiter.hit_all_async([_person_limit(request, person_id)])


async def person_attempt_refused(request, account_id: int, patient_id: int) -> None:
    """The per-person limit owed by an attempt the release gate refuses without the database.

    The person is read once per patient and process. At the release instant thousands of patients are
    refused for the first time within a second, so their look-ups are gathered and read in batches on a
    worker thread (one query per batch, one connection per process, never on the event loop)."""
    try:
        person_id = await read_person(request.app.state, account_id, patient_id)
    except Exception as e:  # the database is away: the refusal still stands; the count waits for next time
        log.warning("per-person limit not counted for a refused attempt: %s", type(e).__name__)
        return
    if person_id is not None:
        await request.app.state.limiter.hit_all_async([_person_limit(request, person_id)])


async def person_before_booking(request, account_id: int, patient_id: int, counted: bool) -> int | None:
    """The person behind a patient this process has not met yet, read before the booking's transaction
    (batched with the other first-timers' look-ups, as for refused attempts) and its per-person limit
    counted unless `counted`: the booking then joins the batched path (booking/batch.py), which takes only
    bookings whose person is known. Read inside the transaction instead, a first-timer's booking ran alone
    in three round trips and a second Redis call: ~3x the CPU of a batched one (bench/winners.py --cold).
    None when there is no such patient under the account (the booking refuses it) or the database did not
    answer (the booking reads the person itself, as before)."""
    try:
        person_id = await read_person(request.app.state, account_id, patient_id)
    except Exception as e:
        log.warning("person not read before the booking: %s", type(e).__name__)
        return None
    if person_id is not None and not counted:
        await request.app.state.limiter.hit_all_async([_person_limit(request, person_id)])  # may answer 429
    return person_id


def count_person_soon(state, account_id: int, patient_id: int) -> None:
    """The per-person limit owed by a refusal answered without waiting (release/inline.py), counted once
    the person is read: the answer is the gate's either way, as with `RateLimiter.count_soon`, and the
    person's budget is spent all the same. Once read, the person is known to this process, so the
    patient's next attempts count all their limits in one call. Before this, such an attempt went the
    usual way (the whole framework) to wait for the look-up, ~2x the CPU of a refusal at T."""
    task = asyncio.get_running_loop().create_task(_count_person(state, account_id, patient_id))
    _counting.add(task)
    task.add_done_callback(_counting.discard)


_counting: set = set()  # the tasks of count_person_soon, kept until done


async def _count_person(state, account_id: int, patient_id: int) -> None:
    try:
        person_id = await read_person(state, account_id, patient_id, later=True)
    except Exception as e:  # the database is away: the refusal stood; the count waits for next time
        log.warning("per-person limit not counted for a refused attempt: %s", type(e).__name__)
        return
    if person_id is not None:
        state.limiter.count_soon([person_limit_of(state, person_id)])


async def read_person(state, account_id: int, patient_id: int, later: bool = False) -> int | None:
    """The person behind the account's patient (None: no such patient under the account), read in a batch
    of look-ups (`person_lookups`) and remembered by this process."""
    person_id = await person_lookups(state, later).person_of(account_id, patient_id)
    if person_id is not None:
        remember_person(state, account_id, patient_id, person_id)
    return person_id


def person_lookups(state, later: bool = False) -> "PersonLookups":
    """The process's batched look-ups; `later` for counts nobody waits for (`count_person_soon`), read in a
    queue of their own: at the release instant thousands of refusals' look-ups would otherwise delay the
    bookings' few, which wait for theirs."""
    name = "person_lookups_later" if later else "person_lookups"
    lookups = getattr(state, name, None)
    if lookups is None:
        lookups = PersonLookups(state.db)
        setattr(state, name, lookups)
    return lookups


class PersonLookups:
    """Batched (account, patient) -> person look-ups: the first waiter reads for everyone who is waiting,
    again and again while more arrive; the others just wait for their answer."""

    def __init__(self, db):
        self.db = db
        self.loop = None
        self.pending: dict[tuple[int, int], list[asyncio.Future]] = {}
        self.busy = False

    async def person_of(self, account_id: int, patient_id: int) -> int | None:
        loop = asyncio.get_running_loop()
        if self.loop is not loop:  # a new event loop (tests): the old one's waiters are gone
            self.loop, self.pending, self.busy = loop, {}, False
        fut = loop.create_future()
        self.pending.setdefault((account_id, patient_id), []).append(fut)
        if not self.busy:
            await self._read_while_waited()
        return await fut

    async def _read_while_waited(self) -> None:
        self.busy = True
        batch: dict = {}
        try:
            while self.pending:
                batch, self.pending = self.pending, {}
                found = await to_thread.run_sync(self._read, list(batch))
                _answer(batch, found.get)
        finally:
            self.busy = False
            # Cancelled or failed: whoever still waits counts nothing this time rather than waiting forever.
            _answer(batch, lambda _: None)
            _answer(self.pending, lambda _: None)
            self.pending = {}

    def _read(self, pairs: list[tuple[int, int]]) -> dict:
        from guahao.accounts.models import Patient

        rows = _persons(self.db, Patient.id.in_({p for _, p in pairs}))
        return {(a, p): person for a, p, person in rows}


def _persons(db, where) -> list:
    """(account id, patient id, person id) of the patients `where` selects (on a worker thread)."""
    from guahao.accounts.models import Patient

    with db.reading() as s:
        return s.execute(select(Patient.account_id, Patient.id, Patient.person_id).where(where)).all()


def _answer(batch: dict, answer) -> None:
    for key, futs in batch.items():
        for f in futs:
            if not f.done():
                f.set_result(answer(key))


def known_person(request, account_id: int, patient_id: int) -> int | None:
    """The person this process has already read behind the account's patient, if any (never a query)."""
    return known_person_of(request.app.state, account_id, patient_id)


def known_person_of(state, account_id: int, patient_id: int) -> int | None:
    return _people_of(state).get((account_id, patient_id))


def _people_of(state) -> dict:
    cache = getattr(state, "person_of", None)
    if cache is None or len(cache) > 200_000:
        cache = state.person_of = {}
    return cache


def read_people_ahead(state, account_id: int) -> None:
    """A logged-in patient refreshing the page before the release will book at T: read the persons behind
    their account's patients now, in the background, so that their attempts at T count the per-person limit
    in the same Redis call as the others — no look-up, no second round trip, and for a winner no round
    trip inside its transaction. Nothing is decided here; an account read ahead is read once per process."""
    if not state.limiter.enabled:
        return
    ahead = getattr(state, "people_ahead", None)
    if ahead is None:
        ahead = state.people_ahead = PeopleAhead(state)
    ahead.want(account_id)


class PeopleAhead:
    """Accounts queued by `read_people_ahead`, read in batches on a worker thread while more arrive."""

    def __init__(self, state, batch: int = 500):
        self.state = state
        self.batch = batch
        self.loop = None
        self.read: set[int] = set()
        self.pending: list[int] = []
        self.task: asyncio.Task | None = None

    def want(self, account_id: int) -> None:
        loop = asyncio.get_running_loop()
        if self.loop is not loop:  # a new event loop (tests): the old one's task is gone
            self.loop, self.pending, self.task = loop, [], None
        if account_id in self.read:
            return
        if len(self.read) > 200_000:
            self.read.clear()
        self.read.add(account_id)
        self.pending.append(account_id)
        if self.task is None:
            self.task = loop.create_task(self._read_while_wanted())

    async def _read_while_wanted(self) -> None:
        try:
            while self.pending:
                batch, self.pending = self.pending[:self.batch], self.pending[self.batch:]
                rows = await to_thread.run_sync(self._read, batch)
                people = _people_of(self.state)
                for account_id, patient_id, person_id in rows:
                    people[(account_id, patient_id)] = person_id
        except Exception as e:  # the booking reads the person itself, as without this
            log.warning("persons not read ahead: %s", type(e).__name__)
        finally:
            self.task = None

    def _read(self, accounts: list[int]) -> list:
        from guahao.accounts.models import Patient

        return _persons(self.state.db, Patient.account_id.in_(accounts))


def login_attempt(request, username: str, kind: str = "account") -> None:
    """Credential stuffing tries many phones from few addresses; brute force tries one phone many times."""
    settings = request.app.state.settings
    limit_all(request, [(f"login-ip:{client_address(request)}", settings.rate_login_ip),
                        (f"login-{kind}:{(username or '').strip()[:64]}", settings.rate_login_phone)])


def sms_attempt(request, phone: str) -> None:
    """For the SMS-code endpoint (A1): per phone and per client address."""
    settings = request.app.state.settings
    limit_all(request, [(f"sms-ip:{client_address(request)}", settings.rate_sms_ip),
                        (f"sms-phone:{phone}", settings.rate_sms_phone),
                        (f"sms-phone-day:{phone}", settings.rate_sms_phone_day)])
