"""The rate limiter's Redis connection on the event loop: a socket the loop watches, hiredis' parser.

At the release instant a booking attempt that goes to the database first waits for its rate-limit count,
and every turn of the server's busy event loop lasts ~10–20 ms (it answers a hundred or more requests per
turn). redis-py's asyncio client spends several turns on a call — the batch's task starts, the command is
written, the reader's waiter is woken, the client resumes, the caller resumes — so the count of an attempt
that goes to the database waited 70–110 ms (timed inside the workers, bench/release_burst.py). Here the
command is written from the call itself and the reply sets the caller's future as it arrives
(the socket is read): the caller resumes the turn after Redis has answered — or sooner: guahao serve's protocol
polls the socket between two requests' reads (`RedisPipe.poll`, serving.py), so a reply that arrives while
the loop answers a turn's hundred requests is taken up at the next of them, not a turn later. Hence a plain
non-blocking socket with the loop's reader callback rather than an asyncio transport, which cannot be read
on demand.

Deliberately hand-written rather than a library's client: it carries one command (EVAL of the limiter's
script), parses with hiredis (the parser redis-py uses), and speaks only to plain `redis://` addresses
(RateLimiter uses redis-py's client for any other). Replies come back in the order commands were sent
(RESP); a reply that does not come within the timeout closes the connection, failing every call waiting on
it (the limiter then counts in process memory for its cool-down, as for any Redis failure).
"""

import asyncio
import collections
import logging
import socket
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


class _Conn:
    """One connection: a non-blocking socket the loop watches, and hiredis' parser for its replies."""

    def __init__(self, pipe: "RedisPipe", sock: socket.socket):
        self.pipe, self.sock = pipe, sock
        self.reader = hiredis.Reader()
        self.out: list[bytes] = []  # what the socket did not take yet
        self.reading = False

    def write(self, payload: bytes) -> None:
        if self.out:
            self.out.append(payload)
            return
        sent = self._send(payload)
        if sent is not None and sent < len(payload):
            self.out.append(payload[sent:])
            self.pipe.loop.add_writer(self.sock.fileno(), self.writable)

    def writable(self) -> None:
        data = b"".join(self.out)
        sent = self._send(data)
        if sent is None:
            return
        self.out = [data[sent:]] if sent < len(data) else []
        if not self.out:
            self.pipe.loop.remove_writer(self.sock.fileno())

    def _send(self, data: bytes) -> int | None:
        """How much of `data` the socket took; None when the connection broke (then given up on)."""
        try:
            return self.sock.send(data)
        except (BlockingIOError, InterruptedError):
            return 0
        except OSError as e:
            self.pipe.broken(RedisGone(f"Redis connection lost ({type(e).__name__})"), self)
            return None

    def readable(self) -> None:
        """Called by the loop when the socket has data, and by `RedisPipe.poll` between two requests' reads
        (then usually finding none). Not re-entered: an answer may lead to another poll."""
        if self.reading:
            return
        self.reading = True
        try:
            while self.pipe.conn is self:
                try:
                    data = self.sock.recv(65536)
                except (BlockingIOError, InterruptedError):
                    return
                except OSError as e:
                    return self.pipe.broken(RedisGone(f"Redis connection lost ({type(e).__name__})"), self)
                if not data:
                    return self.pipe.broken(RedisGone("Redis connection lost (closed)"), self)
                self.received(data)
        finally:
            self.reading = False

    def received(self, data: bytes) -> None:
        self.reader.feed(data)
        waiting = self.pipe.waiting
        while self.pipe.conn is self:  # an answer may give up on the connection
            try:
                reply = self.reader.gets()
            except hiredis.ProtocolError as e:
                return self.pipe.broken(RedisGone(f"Redis protocol error: {e}"), self)
            if reply is False:
                return
            if not waiting:
                return self.pipe.broken(RedisGone("a Redis reply nobody asked for"), self)
            answer, _ = waiting.popleft()
            try:
                answer(reply)  # a ReplyError for Redis's error answers
            except Exception:  # the caller's failure: the connection and the other callers carry on
                log.exception("a Redis reply's caller failed")

    def close(self) -> None:
        try:
            fd = self.sock.fileno()
            if fd >= 0 and not self.pipe.loop.is_closed():
                self.pipe.loop.remove_reader(fd)
                self.pipe.loop.remove_writer(fd)
        finally:
            self.sock.close()


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
        self.conn: _Conn | None = None
        self.connecting: asyncio.Task | None = None
        self.queued: list[bytes] = []  # written once connected
        self.waiting: collections.deque = collections.deque()  # (answer, sent at), in the order sent
        self.timer = None

    @property
    def due(self) -> bool:
        return bool(self.waiting) and self.conn is not None

    def poll(self) -> None:
        """Read what Redis has answered so far, if anything: called by guahao serve's protocol between two
        requests' reads (serving.py), since a reply waiting for its turn of a busy loop waits ~10–20 ms."""
        conn = self.conn
        if conn is not None and self.loop is asyncio.get_running_loop():
            conn.readable()

    def call(self, payload: bytes) -> asyncio.Future:
        """Send one command's bytes now; the future gets its reply (or the error)."""
        future = asyncio.get_running_loop().create_future()
        self.send(payload, lambda reply: _settle(future, reply))
        return future

    def send(self, payload: bytes, answer) -> None:
        """Send one command's bytes now; `answer` is called with the reply as soon as it is read (no loop
        turn in between: the caller's futures are set there), or with the exception that ended the wait
        (RedisGone; hiredis.ReplyError for Redis's error answers)."""
        loop = asyncio.get_running_loop()
        if self.loop is not loop:  # a new loop (tests): the old one's connection cannot serve it
            self._reset(loop)
        self.waiting.append((answer, time.monotonic()))
        if self.conn is not None:
            self.conn.write(payload)
        else:
            self.queued.append(payload)
            if self.connecting is None:
                self.connecting = loop.create_task(self._connect())
        if self.timer is None:
            self.timer = loop.call_later(self.timeout, self._check_late)

    async def _connect(self) -> None:
        host, port, db, username, password = self.address
        loop = self.loop
        try:
            sock = await asyncio.wait_for(self._open(host, port), self.timeout)
        except Exception as e:
            self.connecting = None
            self._fail_all(RedisGone(f"Redis not reachable ({type(e).__name__})"))
            return
        self.connecting = None
        if self.loop is not loop:
            sock.close()
            return
        hello = []
        if password is not None:
            hello.append(command("AUTH", *([username] if username else []), password))
        if db:
            hello.append(command("SELECT", db))
        if hello:  # their replies come first: waiters for them go in front of the queued calls'
            now = time.monotonic()
            for _ in hello:
                self.waiting.appendleft((self._hello_answered, now))
        conn = self.conn = _Conn(self, sock)
        loop.add_reader(sock.fileno(), conn.readable)
        conn.write(b"".join(hello + self.queued))
        self.queued = []

    async def _open(self, host: str, port: int) -> socket.socket:
        infos = await self.loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        error: Exception = OSError(f"no address for {host}")
        for family, type_, proto, _, address in infos:
            sock = socket.socket(family, type_, proto)
            try:
                sock.setblocking(False)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                await self.loop.sock_connect(sock, address)
                return sock
            except BaseException as e:
                sock.close()
                if not isinstance(e, OSError):
                    raise
                error = e
        raise error

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

    def broken(self, error: Exception, conn: "_Conn | None" = None) -> None:
        """Give up on the connection (`conn`: only if it is still the current one) and fail every waiting
        caller: replies still to come would answer the wrong callers."""
        if conn is not None and conn is not self.conn:
            return
        conn, self.conn = self.conn, None
        if conn is not None:
            conn.close()
        self._fail_all(error)

    def _fail_all(self, error: Exception) -> None:
        waiting, self.waiting, self.queued = self.waiting, collections.deque(), []
        for answer, _ in waiting:
            answer(error)
        waiting.clear()

    def _reset(self, loop) -> None:
        if self.conn is not None:
            try:
                self.conn.close()
            except RuntimeError:  # the old loop is closed
                self.conn.sock.close()
        self.loop, self.conn, self.connecting, self.timer = loop, None, None, None
        self.queued, self.waiting = [], collections.deque()

    async def close(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            conn.close()
