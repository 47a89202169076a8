"""The rate limiter's Redis connection on the event loop: an asyncio protocol with hiredis' parser.

At the release instant a booking attempt that goes to the database first waits for its rate-limit count,
and every turn of the server's busy event loop lasts ~10–20 ms (it answers a hundred or more requests per
turn). redis-py's asyncio client spends several turns on a call — the batch's task starts, the command is
written, the reader's waiter is woken, the client resumes, the caller resumes — so the count of an attempt
that goes to the database waited 70–110 ms (timed inside the workers, bench/release_burst.py). Here the
command is written from the call itself and the reply sets the caller's future as it arrives
(`data_received`): the caller resumes the turn after Redis has answered.

Deliberately hand-written rather than a library's client: it carries one command (EVAL of the limiter's
script), parses with hiredis (the parser redis-py uses), and speaks only to plain `redis://` addresses
(RateLimiter uses redis-py's client for any other). Replies come back in the order commands were sent
(RESP); a reply that does not come within the timeout closes the connection, failing every call waiting on
it (the limiter then counts in process memory for its cool-down, as for any Redis failure).
"""

import asyncio
import collections
import logging
import time
from urllib.parse import unquote, urlsplit

import hiredis

log = logging.getLogger("guahao.redis")


class RedisGone(ConnectionError):
    pass


def pipe_address(url: str) -> tuple[str, int, int, str | None, str | None] | None:
    """(host, port, db, username, password) of a plain redis:// URL without query options, else None."""
    parts = urlsplit(url)
    if parts.scheme != "redis" or parts.query or not parts.hostname:
        return None
    path = parts.path.strip("/")
    if path and not path.isdigit():
        return None
    return (parts.hostname, parts.port or 6379, int(path or 0),
            unquote(parts.username) if parts.username else None,
            unquote(parts.password) if parts.password else None)


def command(*args) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        b = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%b\r\n" % (len(b), b))
    return b"".join(out)


class _Protocol(asyncio.Protocol):
    def __init__(self, pipe: "RedisPipe"):
        self.pipe = pipe
        self.reader = hiredis.Reader()
        self.transport = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        waiting = self.pipe.waiting
        while True:
            try:
                reply = self.reader.gets()
            except hiredis.ProtocolError as e:
                self.pipe.broken(RedisGone(f"Redis protocol error: {e}"))
                return
            if reply is False:
                return
            if not waiting:
                self.pipe.broken(RedisGone("a Redis reply nobody asked for"))
                return
            answer, _ = waiting.popleft()
            try:
                answer(reply)  # a ReplyError for Redis's error answers
            except Exception:  # the caller's failure: the connection and the other callers carry on
                log.exception("a Redis reply's caller failed")
            if self.pipe.protocol is not self:  # that answer gave up on the connection
                return

    def connection_lost(self, exc) -> None:
        if self.pipe.protocol is self:  # not one the pipe has given up on already
            self.pipe.broken(RedisGone(f"Redis connection lost ({type(exc).__name__ if exc else 'closed'})"))


def _settle(future: asyncio.Future, reply) -> None:
    if future.done():
        return
    if isinstance(reply, Exception):
        future.set_exception(reply)
    else:
        future.set_result(reply)


class RedisPipe:
    """One connection per event loop, commands pipelined on it; see the module's docstring."""

    def __init__(self, address: tuple, timeout: float = 0.25):
        self.address = address
        self.timeout = timeout
        self.loop: asyncio.AbstractEventLoop | None = None
        self.protocol: _Protocol | None = None
        self.connecting: asyncio.Task | None = None
        self.queued: list[bytes] = []  # written once connected
        self.waiting: collections.deque = collections.deque()  # (answer, sent at), in the order sent
        self.timer = None

    def call(self, payload: bytes) -> asyncio.Future:
        """Send one command's bytes now; the future gets its reply (or the error)."""
        future = asyncio.get_running_loop().create_future()
        self.send(payload, lambda reply: _settle(future, reply))
        return future

    def send(self, payload: bytes, answer) -> None:
        """Send one command's bytes now; `answer` is called with the reply as soon as it arrives (from the
        connection's `data_received`: the caller's futures are set without a loop turn in between), or with
        the exception that ended the wait (RedisGone; hiredis.ReplyError for Redis's error answers)."""
        loop = asyncio.get_running_loop()
        if self.loop is not loop:  # a new loop (tests): the old one's connection cannot serve it
            self._reset(loop)
        self.waiting.append((answer, time.monotonic()))
        if self.protocol is not None:
            self.protocol.transport.write(payload)
        else:
            self.queued.append(payload)
            if self.connecting is None:
                self.connecting = loop.create_task(self._connect())
        if self.timer is None:
            self.timer = loop.call_later(self.timeout, self._check_late)

    async def _connect(self) -> None:
        host, port, db, username, password = self.address
        try:
            transport, protocol = await asyncio.wait_for(
                self.loop.create_connection(lambda: _Protocol(self), host, port), self.timeout)
        except Exception as e:
            self.connecting = None
            self._fail_all(RedisGone(f"Redis not reachable ({type(e).__name__})"))
            return
        self.connecting = None
        hello = []
        if password is not None:
            hello.append(command("AUTH", *([username] if username else []), password))
        if db:
            hello.append(command("SELECT", db))
        if hello:  # their replies come first: waiters for them go in front of the queued calls'
            now = time.monotonic()
            for _ in hello:
                self.waiting.appendleft((self._hello_answered, now))
        self.protocol = protocol
        transport.write(b"".join(hello + self.queued))
        self.queued = []

    def _hello_answered(self, reply) -> None:
        if isinstance(reply, Exception):
            self.broken(RedisGone(f"Redis refused the connection's setup: {reply}"))

    def _check_late(self) -> None:
        self.timer = None
        if not self.waiting:
            return
        oldest = self.waiting[0][1]
        late = time.monotonic() - oldest
        if late >= self.timeout:
            self.broken(RedisGone(f"no reply from Redis in {self.timeout:.2f}s"))
        else:
            self.timer = self.loop.call_later(self.timeout - late, self._check_late)

    def broken(self, error: Exception) -> None:
        protocol, self.protocol = self.protocol, None
        if protocol is not None and protocol.transport is not None:
            protocol.transport.abort()  # replies still to come would answer the wrong callers
        self._fail_all(error)

    def _fail_all(self, error: Exception) -> None:
        waiting, self.waiting, self.queued = self.waiting, collections.deque(), []
        for answer, _ in waiting:
            answer(error)
        waiting.clear()

    def _reset(self, loop) -> None:
        if self.protocol is not None and self.protocol.transport is not None:
            try:
                self.protocol.transport.abort()
            except RuntimeError:  # the old loop is closed
                pass
        self.loop, self.protocol, self.connecting, self.timer = loop, None, None, None
        self.queued, self.waiting = [], collections.deque()

    async def close(self) -> None:
        if self.protocol is not None and self.protocol.transport is not None:
            self.protocol.transport.close()
        self.protocol = None
