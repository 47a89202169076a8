"""guahao serve's protocol reads the replies a busy loop would take up a turn late (the rate limiter's Redis
socket, the bookings' outcomes) before each request's bytes: serving.py, release/inline.py."""

from types import SimpleNamespace

import pytest

from guahao.serving import HttpToolsProtocol, InlineHttpTools

pytestmark = pytest.mark.skipif(HttpToolsProtocol is None, reason="uvicorn without httptools")


class _Poller:
    def __init__(self, due: bool):
        self.due, self.polled = due, 0

    def poll(self):
        self.polled += 1
        self.due = False


def test_each_read_polls_what_is_due_and_only_that():
    due, idle = _Poller(True), _Poller(False)
    protocol = InlineHttpTools.__new__(InlineHttpTools)  # its uvicorn parts are not needed while an answer is under way
    protocol._inline = SimpleNamespace(polls=lambda: [due, idle])
    protocol._later, protocol._held = True, []
    protocol.data_received(b"GET / HTTP/1.1\r\n\r\n")
    protocol.data_received(b"GET / HTTP/1.1\r\n\r\n")
    assert (due.polled, idle.polled) == (1, 0)
    assert protocol._held == [b"GET / HTTP/1.1\r\n\r\n"] * 2  # held for after the answer, as before


def test_the_inline_answers_poll_the_limiters_pipe_and_the_bookings():
    from guahao.release.inline import Inline
    from guahao.security.ratelimit import RateLimiter

    limiter = RateLimiter("redis://127.0.0.1:6379/0")
    bookings = SimpleNamespace(poll=lambda: None, due=False)
    state = SimpleNamespace(limiter=limiter, pg_bookings=bookings)
    assert Inline(state).polls() == [limiter.redis._pipe, bookings]
    state = SimpleNamespace(limiter=RateLimiter(None), pg_bookings=None)  # memory limits, SQLite
    assert Inline(state).polls() == []


def test_the_servers_own_header_lines_follow_each_new_list_uvicorn_puts_in_place():
    from guahao.serving import _default_head

    first = [(b"date", b"Mon, 30 Nov 2026 07:00:00 GMT"), (b"server", b"uvicorn")]
    assert _default_head(first) == b"date: Mon, 30 Nov 2026 07:00:00 GMT\r\nserver: uvicorn\r\n"
    later = [(b"date", b"Mon, 30 Nov 2026 07:00:01 GMT"), (b"server", b"uvicorn")]
    assert _default_head(later) == b"date: Mon, 30 Nov 2026 07:00:01 GMT\r\nserver: uvicorn\r\n"
    assert _default_head([]) == b""
