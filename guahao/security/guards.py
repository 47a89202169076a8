"""The rate limits applied at the doors scalpers push on: booking attempts and logins.

Counted before any work is done, so a flood costs a Redis round trip, not a database transaction.
Schedule and catalog reads are never limited: people refresh them by hand at release time.
"""

from sqlalchemy import select

from guahao.security.clientip import client_address
from guahao.security.ratelimit import limit_all


def booking_attempt(request, account_id: int, patient_id: int | None) -> None:
    """Per client address, per account, and per person (the ID number behind the patient, A3)."""
    settings = request.app.state.settings
    limiter = request.app.state.limiter
    if not limiter.enabled:
        return
    limits = [(f"book-ip:{client_address(request)}", settings.rate_booking_ip),
              (f"book-account:{account_id}", settings.rate_booking_account)]
    person_id = _person_of(request, account_id, patient_id) if patient_id else None
    if person_id is not None:
        # One person added under many accounts (a scalper's farm) still shares one budget.
        limits.append((f"book-person:{person_id}", settings.rate_booking_person))
    limit_all(request, limits)


def _person_of(request, account_id: int, patient_id: int) -> int | None:
    """The person behind an account's patient, remembered per app: a patient row never changes person,
    and the lookup would otherwise cost a database read on every refused attempt at the release burst."""
    from guahao.accounts.models import Patient

    cache = getattr(request.app.state, "person_of", None)
    if cache is None or len(cache) > 200_000:
        cache = request.app.state.person_of = {}
    key = (account_id, patient_id)
    if key not in cache:
        with request.app.state.db.reading() as s:
            person = s.scalar(select(Patient.person_id).where(Patient.id == patient_id,
                                                              Patient.account_id == account_id))
        if person is None:
            return None  # not cached: the patient may be added a moment later
        cache[key] = person
    return cache[key]


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
