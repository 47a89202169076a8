"""The rate limits applied at the doors scalpers push on: booking attempts and logins.

Counted before any work is done, so a flood costs a Redis round trip, not a database transaction.
Schedule and catalog reads are never limited: people refresh them by hand at release time.
"""

from anyio import CapacityLimiter, to_thread
from sqlalchemy import select

from guahao.security.clientip import client_address
from guahao.security.ratelimit import limit_all


def _booking_limits(request, account_id: int, patient_id: int | None):
    settings = request.app.state.settings
    limits = [(f"book-ip:{client_address(request)}", settings.rate_booking_ip),
              (f"book-account:{account_id}", settings.rate_booking_account)]
    person_id = _people(request).get((account_id, patient_id)) if patient_id else None
    if person_id is not None:
        # One person added under many accounts (a scalper's farm) still shares one budget.
        limits.append((f"book-person:{person_id}", settings.rate_booking_person))
    return limits, person_id is not None or not patient_id


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
    # A patient row never changes person: remembered for this process's later attempts.
    _people(request)[(account_id, patient_id)] = person_id
    limit_all(request, [(f"book-person:{person_id}", request.app.state.settings.rate_booking_person)])


async def person_attempt_refused(request, account_id: int, patient_id: int) -> None:
    """The per-person limit owed by an attempt the release gate refuses without the database.

    The person is read once per patient and process, on a worker thread (never on the event loop), by at
    most two look-ups at a time per process so that bookings keep their connections."""
    lookups = getattr(request.app.state, "person_lookups", None)
    if lookups is None:
        lookups = request.app.state.person_lookups = CapacityLimiter(2)
    person_id = await to_thread.run_sync(_read_person, request.app.state.db, account_id, patient_id,
                                         limiter=lookups)
    if person_id is not None:
        _people(request)[(account_id, patient_id)] = person_id
        await request.app.state.limiter.hit_all_async(
            [(f"book-person:{person_id}", request.app.state.settings.rate_booking_person)])


def _read_person(db, account_id: int, patient_id: int) -> int | None:
    from guahao.accounts.models import Patient

    with db.reading() as s:
        return s.scalar(select(Patient.person_id).where(Patient.id == patient_id,
                                                        Patient.account_id == account_id))


def _people(request) -> dict:
    """(account id, patient id) -> person id, per app."""
    cache = getattr(request.app.state, "person_of", None)
    if cache is None or len(cache) > 200_000:
        cache = request.app.state.person_of = {}
    return cache


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
