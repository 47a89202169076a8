"""A lean HTTP/1.1 keep-alive client for the load generator.

The load generator shares the machine's two cores with the server and the database, so every microsecond
it spends per request is taken from the server it measures. aiohttp's client spent 246 µs of CPU per request
here against this one's 96 µs (`bench/client_cost.py`, 3 alternating rounds), so the benchmark talks
HTTP itself over asyncio protocols on uvloop: requests are pre-built bytes, responses are split on
Content-Length, and only the status, the headers asked for and the body are read. It speaks exactly the
subset our server answers with (no chunked bodies, no redirects, no TLS); anything else is an error.
"""

import asyncio
import collections
import time

_HDR_END = b"\r\n\r\n"


class ConnectionFailed(Exception):
    pass


class _Conn(asyncio.Protocol):
    __slots__ = ("transport", "buf", "waiter", "closed")

    def __init__(self):
        self.transport = None
        self.buf = bytearray()
        self.waiter: asyncio.Future | None = None
        self.closed = False

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.buf += data
        if self.waiter is not None:
            self._parse()

    def _parse(self):
        buf = self.buf
        end = buf.find(_HDR_END)
        if end < 0:
            return
        head = bytes(buf[:end]).lower()
        length = 0
        i = head.find(b"\r\ncontent-length:")
        if i >= 0:
            j = head.find(b"\r\n", i + 2)
            length = int(head[i + 17:j if j >= 0 else len(head)])
        elif b"\r\ntransfer-encoding:" in head:
            self._fail(ConnectionFailed("chunked responses are not spoken here"))
            return
        total = end + 4 + length
        if len(buf) < total:
            return
        arrival = time.perf_counter()
        body = bytes(buf[end + 4:total])
        del buf[:total]
        waiter, self.waiter = self.waiter, None
        if not waiter.done():
            waiter.set_result((int(head[9:12]), head, body, arrival))

    def _fail(self, exc):
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc):
        self.closed = True
        self._fail(ConnectionFailed(str(exc or "connection closed")))


def header(head: bytes, name: bytes) -> str | None:
    """A response header's value (`name` in lower case) from the lower-cased head `request` returns."""
    i = head.find(b"\r\n" + name + b":")
    if i < 0:
        return None
    j = head.find(b"\r\n", i + 2)
    return head[i + len(name) + 3:j if j >= 0 else len(head)].strip().decode("latin-1")


class Client:
    """At most `connections` requests in flight, each on its own kept-alive connection."""

    def __init__(self, host: str, port: int, connections: int, timeout: float = 30.0):
        self.host, self.port, self.timeout = host, port, timeout
        # Taken oldest-idle first, so that every connection keeps being used: one idle for longer than the
        # server's keep-alive (uvicorn: 5 s) is closed, and the next request would pay a new handshake.
        self._idle: collections.deque[_Conn] = collections.deque()
        self.connections = connections
        self._all: list[_Conn] = []
        self._sem = asyncio.Semaphore(connections)
        self._host_line = f"Host: {host}:{port}\r\n".encode()

    @classmethod
    def for_url(cls, base_url: str, connections: int, timeout: float = 30.0) -> "Client":
        hostport = base_url.split("://", 1)[1].rstrip("/")
        host, _, port = hostport.partition(":")
        return cls(host, int(port or 80), connections, timeout)

    def slot(self):
        """Hold a connection's turn (the caller times its request inside it)."""
        return self._sem

    def build(self, method: str, path: str, headers: dict | None = None, body: bytes = b"",
              content_type: str = "application/json") -> bytes:
        lines = [f"{method} {path} HTTP/1.1\r\n".encode(), self._host_line]
        for k, v in (headers or {}).items():
            lines.append(f"{k}: {v}\r\n".encode("latin-1"))
        if body or method in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n".encode())
        lines.append(b"\r\n")
        return b"".join(lines) + body

    async def send(self, raw: bytes) -> tuple[int, bytes, bytes, float]:
        """Send a pre-built request on an idle connection; the caller holds `slot()`.

        Returns (status, lower-cased head, body, arrival): `arrival` is when the protocol had read the whole
        answer (time.perf_counter), before this generator's own scheduling resumes the caller. Raises
        asyncio.TimeoutError or ConnectionFailed."""
        loop = asyncio.get_running_loop()
        conn = None
        while self._idle:
            c = self._idle.popleft()
            if not c.closed:
                conn = c
                break
        if conn is None:
            try:
                _, conn = await loop.create_connection(_Conn, self.host, self.port)
            except OSError as e:
                raise ConnectionFailed(str(e)) from None
            self._all.append(conn)
        fut = loop.create_future()
        conn.waiter = fut
        conn.transport.write(raw)
        timer = loop.call_later(self.timeout, _expire, fut, conn)
        try:
            result = await fut
        finally:
            timer.cancel()
        self._idle.append(conn)
        return result

    async def open_all(self) -> None:
        """Open every connection ahead, as 5,000 browsers that have been refreshing hold theirs open: the
        first wave of a burst must not measure 256 TCP handshakes."""
        loop = asyncio.get_running_loop()
        missing = self.connections - len(self._idle)
        try:
            made = await asyncio.gather(*(loop.create_connection(_Conn, self.host, self.port)
                                          for _ in range(missing)))
        except OSError as e:
            raise ConnectionFailed(str(e)) from None
        for _, conn in made:
            self._all.append(conn)
            self._idle.append(conn)

    async def request(self, method: str, path: str, headers: dict | None = None, body: bytes = b""):
        async with self._sem:
            return await self.send(self.build(method, path, headers, body))

    def close(self) -> None:
        for c in self._all:
            if c.transport is not None:
                c.transport.close()
        self._all.clear()
        self._idle.clear()


def _expire(fut: asyncio.Future, conn: _Conn) -> None:
    if not fut.done():
        fut.set_exception(asyncio.TimeoutError())
        conn.waiter = None
        conn.closed = True
        if conn.transport is not None:
            conn.transport.close()


def run(coro):
    """asyncio.run on uvloop: the client's per-request cost is mostly the event loop's."""
    import uvloop

    return uvloop.run(coro)
