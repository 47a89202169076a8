"""The fast lane: the release storm's two hot requests without the framework's per-request cost.

At the release instant nearly every request is one of two kinds: a refresh of the availability page and a
booking attempt, most of which the gate already knows to be lost. Going through routing, dependency
injection and validation costs more CPU than producing those answers (FastAPI ≥0.137 also walks every
included router to match a path: ~0.3–0.7 ms per request over this app's 140 routes, measured with
bench/asgi_cost.py), and CPU is the limit. This ASGI middleware serves exactly these two requests itself and
hands everything else, untouched, to the application:

- `GET /api/v1/slots` whose page is fresh in the availability cache, or being rendered by the route for an
  earlier request (same key, same freshness rule, same ETag / 304 / Cache-Control as the route);
- `POST /api/v1/appointments` with a valid account token, no Idempotency-Key, and a small JSON body of
  exactly the route's fields and types: served by the route's own `booking.api.attempt` (rate limits,
  gate, database), with the route's error answers (`errors.api_error`).

Anything it cannot parse strictly, or any doubt, falls through to the route, which gives the full answer.
Under `guahao serve` most of these requests do not even get here: its HTTP protocol answers the sure ones
as their bytes arrive (release/inline.py), with this module's parsing and the same answers.
"""

import asyncio
import json
import logging
from datetime import date
from functools import lru_cache
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import Response

from guahao.accounts.rules import InsuranceType
from guahao.accounts.security import read_token
from guahao.errors import DomainError, api_error
from guahao.release.availability import etag_matches
from guahao.security.guards import read_people_ahead

log = logging.getLogger("guahao.fastlane")
SLOTS = "/api/v1/slots"
BOOK = "/api/v1/appointments"
_MAX_BODY = 1024
_BODY_FIELDS = {"slot_id", "patient_id", "insurance_type"}
_INSURANCE = {t.value for t in InsuranceType}
_ID_MAX = 2**31 - 1


class FastLane:
    def __init__(self, app, state):
        self.app = app
        self.state = state

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            path, method = scope["path"], scope["method"]
            if path == SLOTS and method == "GET":
                if await self._slots(scope, receive, send):
                    return
            elif path == BOOK and method == "POST":
                handled, receive = await self._book(scope, receive, send)
                if handled:
                    return
        await self.app(scope, receive, send)

    async def _slots(self, scope, receive, send) -> bool:
        key = _slots_key(scope["query_string"])
        if key is None:
            return False
        now = self.state.clock.now()
        page = self.state.availability.peek(key, now)
        if page is None:
            rendering = self.state.renderings.in_progress(key)
            if rendering is None:
                return False  # the route renders it, and answers whatever goes wrong
            try:
                page = await asyncio.shield(rendering)
            except Exception:
                return False
            if not self.state.availability.is_fresh(page, now):
                return False
        response = page_response(page, etag_matches(_header(scope, b"if-none-match"), page.etag))
        await response(scope, receive, send)
        _check_token_ahead(self.state, _header(scope, b"authorization"), now)
        return True

    async def _book(self, scope, receive, send):
        headers = dict(scope["headers"])
        length = headers.get(b"content-length")
        if (b"idempotency-key" in headers or length is None or not length.isdigit()
                or int(length) > _MAX_BODY or not headers.get(b"content-type", b"").startswith(b"application/json")):
            return False, receive
        body, more = b"", True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # disconnect: let the application see it
                return False, _replay(body, message)
            body += message.get("body", b"")
            more = message.get("more_body", False)
        replay = _replay(body, None, receive)
        ids = _ids_of(body)
        auth = headers.get(b"authorization", b"")
        if ids is None or not auth.startswith(b"Bearer "):
            return False, replay
        now = self.state.clock.now()
        try:
            claims = read_token(auth[7:].decode("latin-1"), "account", now)
        except DomainError:
            return False, replay  # the route gives the full 401
        from guahao.booking.api import attempt
        from guahao.booking.schemas import AppointmentIn

        slot_id, patient_id, insurance = ids
        body_in = AppointmentIn(slot_id=slot_id, patient_id=patient_id, insurance_type=insurance)
        try:
            response = await attempt(Request(scope, replay), int(claims["sub"]), body_in)
        except Exception as e:  # the same answers as the route's exception handlers
            if not isinstance(e, DomainError):
                log.exception("booking failed in the fast lane")
            response = api_error(e)
        await response(scope, replay, send)
        return True, replay


def page_response(page, not_modified: bool) -> Response:
    """A cached page's answer, as the route gives it: the page, or 304 when the client holds it already."""
    from guahao.schedule.api import CACHE_CONTROL

    headers = {"ETag": page.etag, "Cache-Control": CACHE_CONTROL}
    if not_modified:
        return Response(status_code=304, headers=headers)
    return Response(page.body, media_type="application/json", headers=headers)


def _check_token_ahead(state, auth: str | None, now) -> None:
    """A logged-in patient refreshing the page before the release will press 预约 at T: check their token's
    signature now, after the answer has gone, so that T finds it verified (each process verifies a token
    once, ~75 µs; profiled at T before this, first-time checks were ~15% of a booking attempt's CPU), and
    have the persons behind their patients read (security/guards.read_people_ahead).
    Nothing is decided here: the booking checks the token again, expiry included."""
    if auth is None or not auth.startswith("Bearer "):
        return
    try:
        claims = read_token(auth[7:], "account", now)
    except DomainError:
        return  # an expired or foreign token: the booking will answer 401
    read_people_ahead(state, int(claims["sub"]))


def _replay(body: bytes, then, receive=None):
    """A `receive` that gives the application the body already read, then `then` (a message already
    taken off the wire), then whatever the real `receive` brings (it waits, as the server's does, until
    the client goes away: answering "disconnected" at once would cancel a response's background task)."""
    sent = False

    async def replay():
        nonlocal sent, then
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        if then is not None:
            message, then = then, None
            return message
        if receive is not None:
            return await receive()
        return {"type": "http.disconnect"}
    return replay


def _header(scope, name: bytes) -> str | None:
    for k, v in scope["headers"]:
        if k == name:
            return v.decode("latin-1")
    return None


def _ids_of(body: bytes) -> tuple[int, int, str] | None:
    """(slot id, patient id, insurance type) of a booking body exactly as the route would accept it, or
    None when in doubt."""
    try:
        data = json.loads(body)
    except ValueError:
        return None
    if not isinstance(data, dict) or not set(data) <= _BODY_FIELDS or not {"slot_id", "patient_id"} <= set(data):
        return None
    slot_id, patient_id = data["slot_id"], data["patient_id"]
    for v in (slot_id, patient_id):
        if type(v) is not int or not 1 <= v <= _ID_MAX:
            return None
    insurance = data.get("insurance_type", InsuranceType.SELF_PAY.value)
    if insurance not in _INSURANCE:
        return None
    return slot_id, patient_id, insurance


@lru_cache(maxsize=4096)
def _slots_key(query: bytes):
    """The route's cache key (department_id, doctor_id, date, date_to) from a plain query string.
    Remembered: the storm's refreshes ask the same few queries thousands of times a second."""
    try:
        pairs = parse_qsl(query.decode("ascii"), strict_parsing=True) if query else []
    except (ValueError, UnicodeDecodeError):
        return None
    values: dict = {}
    for k, v in pairs:
        if k in values:
            return None
        if k in ("department_id", "doctor_id"):
            if not v.isdigit() or not 1 <= int(v) <= _ID_MAX or v != str(int(v)):
                return None
            values[k] = int(v)
        elif k in ("date", "date_to"):
            if len(v) != 10:
                return None
            try:
                values[k] = date.fromisoformat(v)
            except ValueError:
                return None
        # Other parameters (cache busters such as `_=`) are ignored, as the route ignores them.
    if "department_id" not in values and "doctor_id" not in values:
        return None
    d, d_to = values.get("date"), values.get("date_to")
    if d_to is not None and (d is None or not 0 <= (d_to - d).days <= 90):
        return None
    return values.get("department_id"), values.get("doctor_id"), d, d_to
