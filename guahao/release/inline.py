"""The storm's sure answers, given by the HTTP protocol as the request's bytes arrive.

At the release instant most requests are refusals the gate already knows (a sold-out session) or refreshes
of a page the availability cache holds. The fast lane (fastlane.py) spares them the framework, but each
still cost ~210 µs of server CPU at T, where uvicorn with a trivial ASGI app costs ~30 µs and a bare
asyncio protocol ~8 µs (bench/floor.py): the rest was the request's scope, task, middleware, the awaited
Redis count and the loop turns between them. `Inline.answer` takes the request's bytes and gives the
whole answer at once (`guahao serve`'s protocol, guahao/serving.py, writes it), for exactly:

- `GET /api/v1/slots?…` whose page is fresh in the availability cache: 304 or the page, as fastlane;
- `POST /api/v1/appointments` with a valid account token, no Idempotency-Key, the route's JSON body, that
  the release gate refuses (SESSION_FULL, SLOT_TAKEN) and whose rate limits this process does not know to
  be spent: the attempt is counted without waiting for Redis (`RateLimiter.count_soon`), and the
  per-person limit of a patient the process has not met yet once the person is read (`count_person_soon`).
- the same booking request when the gate does not know the answer: not answered here but started here,
  and carried to its answer by callbacks (release/direct.py) instead of an ASGI task.

Anything else — one header it does not know, a request split over two reads, a second request behind the
first, a doubt of any kind — returns None and the request goes the usual way, which gives the full answer.
The answers are the bytes the usual way sends (tests/api/test_inline_answers.py compares them).
"""

import re
from dataclasses import dataclass
from functools import lru_cache

from starlette.responses import Response

from guahao.accounts.security import read_token
from guahao.errors import DomainError
from guahao.release.availability import Page, etag_matches
from guahao.release.fastlane import (BOOK, SLOTS, _MAX_BODY, _check_token_ahead, _ids_of, _slots_key,
                                     page_response)
from guahao.release.direct import Direct
from guahao.security.browser import with_browser_headers
from guahao.security.guards import booking_limits_of, count_person_soon, known_person_of

# Headers that change nothing in these two answers. Any other (Idempotency-Key, X-Forwarded-For,
# Transfer-Encoding, Expect, Upgrade, Cookie …) sends the request the usual way.
_KNOWN = frozenset({
    b"host", b"authorization", b"content-type", b"content-length", b"connection", b"accept",
    b"accept-encoding", b"accept-language", b"user-agent", b"if-none-match", b"cache-control", b"pragma",
    b"origin", b"referer", b"sec-fetch-site", b"sec-fetch-mode", b"sec-fetch-dest", b"sec-ch-ua",
    b"sec-ch-ua-mobile", b"sec-ch-ua-platform", b"dnt", b"priority",
})
_PRINTABLE = re.compile(rb"[\t\r\n\x20-\x7e]*")  # what httptools accepts at least; anything else: usual way
_NAME = re.compile(rb"[A-Za-z0-9-]+")


@dataclass(frozen=True)
class Parsed:
    method: bytes
    path: bytes
    query: bytes
    headers: dict  # lower-case name -> value, each name at most once
    body: bytes


def parse(data: bytes) -> Parsed | None:
    """Exactly one whole HTTP/1.1 request, strictly, or None."""
    end = data.find(b"\r\n\r\n")
    if end < 0 or not _PRINTABLE.fullmatch(data, 0, end):
        return None
    head = data[:end]
    lines = head.split(b"\r\n")
    if head.count(b"\n") != len(lines) - 1 or head.count(b"\r") != len(lines) - 1:
        return None  # a bare CR or LF: parsers disagree on those, so the usual one decides
    parts = lines[0].split(b" ")
    if len(parts) != 3 or parts[2] != b"HTTP/1.1":
        return None
    method, target = parts[0], parts[1]
    path, _, query = target.partition(b"?")
    headers = {}
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep or not _NAME.fullmatch(name):
            return None
        name = name.lower()
        if name not in _KNOWN or name in headers:
            return None
        headers[name] = value.strip(b" \t")
    length = headers.get(b"content-length", b"0")
    if not length.isdigit() or len(length) > 6 or len(data) != end + 4 + int(length):
        return None
    if headers.get(b"connection", b"keep-alive").lower() != b"keep-alive":
        return None
    return Parsed(method, path, query, headers, data[end + 4:])


class Inline:
    def __init__(self, state, direct: bool = True):
        self.state = state
        self.direct = direct  # booking attempts the database decides carried by release/direct.py
        self._polls: list | None = None

    def polls(self) -> list:
        """What guahao serve's protocol reads between two requests' reads: the rate limiter's Redis replies
        and the bookings' thread's outcomes, which a busy loop would take up a turn (~20 ms) late."""
        if self._polls is None:
            found = [self.state.limiter.pipe(), getattr(self.state, "pg_bookings", None)]
            self._polls = [p for p in found if hasattr(p, "poll")]
        return self._polls

    def answer(self, data: bytes, client: tuple | None):
        """(status, the answer's header lines after the server's own and its body, a call to make once it is
        written) or None: the usual way answers."""
        if len(data) > 4096 or data[:4] not in (b"GET ", b"POST"):
            return None
        req = parse(data)
        if req is None:
            return None
        if req.method == b"GET" and req.path == SLOTS.encode() and not req.body:
            return self._slots(req)
        if req.method == b"POST" and req.path == BOOK.encode() and not req.query:
            return self._refusal(req, client)
        return None

    def _slots(self, req: Parsed):
        key = _slots_key(req.query)
        if key is None:
            return None
        state = self.state
        now = state.clock.now()
        page = state.availability.peek(key, now)
        if page is None:
            return None
        auth = req.headers.get(b"authorization")
        after = None
        if auth is not None:
            text = auth.decode("latin-1")
            after = lambda: _check_token_ahead(state, text, now)  # noqa: E731
        match = etag_matches(_text(req.headers.get(b"if-none-match")), page.etag)
        return (304 if match else 200), _page_tail(page, match), after

    def _refusal(self, req: Parsed, client: tuple | None):
        h = req.headers
        auth = h.get(b"authorization", b"")
        if (not auth.startswith(b"Bearer ") or not h.get(b"content-type", b"").startswith(b"application/json")
                or len(req.body) > _MAX_BODY):
            return None
        ids = _ids_of(req.body)
        if ids is None:
            return None
        state = self.state
        now = state.clock.now()
        refusal = state.gate.refusal(ids[0], now)
        if refusal is not None and refusal.details:
            return None  # an answer with details: the usual way
        if refusal is None and not self.direct:
            return None
        try:
            claims = read_token(auth[7:].decode("latin-1"), "account", now)
        except DomainError:
            return None  # the usual way answers 401
        limiter = state.limiter
        account_id, address = int(claims["sub"]), client[0] if client else None
        if refusal is None:  # the database decides: carried by callbacks (release/direct.py) where it can be
            if not Direct.possible(state):
                return None
            person_id = known_person_of(state, account_id, ids[1])  # None: Direct reads it first
            limits, _ = booking_limits_of(state, address, account_id, ids[1])
            return Direct(state, now, account_id, ids[0], ids[1], ids[2], person_id, limits)
        if limiter.enabled:
            limits, person_known = booking_limits_of(state, address, account_id, ids[1])
            if not limiter.count_soon(limits):
                return None  # a 429 to give: the usual way
            if not person_known:
                count_person_soon(state, account_id, ids[1])
        return refusal.status, _refusal_tail(refusal.code, refusal.message, refusal.status), None


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode("latin-1")


def tail_of(response: Response) -> bytes:
    """A response's header lines, as the app sends them through BrowserGuard, then its body."""
    headers = with_browser_headers(response.raw_headers)
    return b"".join(k + b": " + v + b"\r\n" for k, v in headers) + b"\r\n" + response.body


@lru_cache(maxsize=64)
def _refusal_tail(code: str, message: str, status: int) -> bytes:
    from guahao.booking.api import canned_refusal

    return tail_of(canned_refusal(code, message, status))


@lru_cache(maxsize=1024)
def _page_tail(page: Page, not_modified: bool) -> bytes:
    return tail_of(page_response(page, not_modified))
