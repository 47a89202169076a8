"""Several uvicorn worker processes, each accepting connections on a listening socket of its own.

uvicorn's `--workers N` has every worker accept on one shared socket: whichever worker's loop is idle when
a connection arrives takes it, so the split is uneven (timed inside two workers, the bench's first wave of
256 attempts at the release instant split 184/99, and 64/196 in another run), and the worker holding most
connections gets most of the attempts while the other's database connections sit idle. With SO_REUSEPORT
each worker listens on a socket of its own bound to the same address, and the kernel spreads new
connections over them by a hash of the client's address and port (125/131 and 132/129 in traced runs).

The parent first checks that the address is free with a plain socket (SO_REUSEPORT alone would let a second
server on the same port share it silently), then binds it with SO_REUSEPORT without listening, to hand to
uvicorn's supervisor (restarts, signals and health checks are uvicorn's `Multiprocess`); a socket that is
bound but not listening takes no connections. Caveat of SO_REUSEPORT: connections waiting in a worker's
accept queue when that worker stops are reset; a rolling restart (SIGHUP) may drop a few.
"""

import logging
import socket

from uvicorn import Config
from uvicorn.supervisors import multiprocess

from guahao.release.direct import Direct
from guahao.release.inline import tail_of

try:
    from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
except ImportError:  # uvicorn without httptools: its h11 protocol, unchanged
    HttpToolsProtocol = None

log = logging.getLogger("guahao.serving")


def reuse_port_socket(address: tuple, family: int = socket.AF_INET) -> socket.socket:
    sock = socket.socket(family=family)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(address)
    sock.set_inheritable(True)
    return sock


class _OwnSocketProcess(multiprocess.Process):
    """A worker that listens on a socket of its own, bound to the address of the parent's."""

    def target(self, sockets=None) -> None:  # runs in the worker process
        own = []
        for shared in sockets or ():
            own.append(reuse_port_socket(shared.getsockname()[:2], shared.family))
            shared.close()
        super().target(own)


def run(config: Config) -> None:
    """Serve `config` (an import string app, `workers` > 1) with one listening socket per worker. Raises
    OSError when the address is taken."""
    family = socket.AF_INET6 if ":" in (config.host or "") else socket.AF_INET
    with socket.socket(family=family) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((config.host, config.port))
    sock = reuse_port_socket((config.host, config.port), family)
    # uvicorn's supervisor makes its workers by this module-level name (start, restarts, SIGTTIN).
    multiprocess.Process = _OwnSocketProcess
    multiprocess.Multiprocess(config, sockets=[sock]).run()


def can_reuse_port() -> bool:
    return hasattr(socket, "SO_REUSEPORT")


class InlineHttpTools(HttpToolsProtocol or object):
    """uvicorn's httptools protocol (`guahao serve`), the release storm's sure answers given as their request
    arrives (guahao/release/inline.py).

    Stop 16 also held each answer's head until its body, to send both in one write. bench/floor.py found that
    costing 8–14 µs of CPU per answer and a p99 of 52–63 ms against 11–13 ms with a trivial app (uvloop
    gathers a turn's writes to a socket anyway); in the burst it was a draw (two pairs), so it went."""

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._inline = _inline_of(self.app)
        self._in_message = False
        self._later = False  # an answer under way (release/direct.py)
        self._held: list[bytes] = []  # what came meanwhile, read once it is written
        self._close_after = False

    def shutdown(self) -> None:
        if self._later:  # the server stops: close once the answer under way is written
            self._close_after = True
            return
        super().shutdown()

    def on_message_begin(self) -> None:
        self._in_message = True
        super().on_message_begin()

    def on_message_complete(self) -> None:
        self._in_message = False
        super().on_message_complete()

    def data_received(self, data: bytes) -> None:
        if self._inline is not None:
            for p in self._inline.polls():
                if p.due:
                    p.poll()
        if self._later:
            self._held.append(data)
            return
        # Only between requests, with nothing queued or half-read, the answer not held up by a slow reader,
        # and no access log to write: otherwise the usual way keeps its order and its bookkeeping.
        if (self._inline is not None and not self._in_message and not self.pipeline
                and (self.cycle is None or self.cycle.response_complete)
                and not self.flow.write_paused and not self.access_log):
            try:
                answer = self._inline.answer(data, self.client)
            except Exception:
                log.exception("inline answer failed; answering the usual way")
                answer = None
            if isinstance(answer, Direct):
                self._unset_keepalive_if_required()
                self._later = True
                answer.start(self._answered_later)
                return
            if answer is not None:
                self._write_inline(*answer)
                return
        super().data_received(data)

    def _answered_later(self, response) -> None:
        self._later = False
        if self.transport.is_closing():
            return
        try:
            tail = tail_of(response)
        except Exception:
            log.exception("inline answer failed")
            self.transport.close()
            return
        self._write_inline(response.status_code, tail, None)
        if self._close_after:
            self.transport.close()
            return
        held, self._held = self._held, []
        for data in held:
            self.data_received(data)

    def _write_inline(self, status: int, tail: bytes, after) -> None:
        self._unset_keepalive_if_required()
        self.transport.write(STATUS_LINE[status] + _default_head(self.server_state.default_headers) + tail)
        self.server_state.total_requests += 1
        self.timeout_keep_alive_task = self.loop.call_later(self.timeout_keep_alive, self.timeout_keep_alive_handler)
        if after is not None:
            after()


_head: list = [None, b""]  # uvicorn's default headers (Date, Server) and their bytes


def _default_head(headers: list) -> bytes:
    """The server's own header lines, joined once per list: uvicorn puts a new one in place each second
    (its Date), so an answer never carries a stale date and the join is not paid per answer."""
    if headers is not _head[0]:
        _head[:] = [headers, b"".join(k + b": " + v + b"\r\n" for k, v in headers)]
    return _head[1]


# uvicorn's protocol attributes the inline answers read or keep up (checked: without them, uvicorn's own).
_RELIES_ON = ("on_message_begin", "on_message_complete", "_unset_keepalive_if_required", "timeout_keep_alive_handler",
              "shutdown")


def _inline_of(app):
    """The application's `Inline` (app.state.inline), under whatever uvicorn wrapped it in; or None."""
    for _ in range(8):
        if app is None:
            return None
        state = getattr(app, "state", None)
        inline = getattr(state, "inline", None) if state is not None else None
        if inline is not None:
            return inline
        app = getattr(app, "app", None)
    return None


def http_protocol() -> str:
    """uvicorn's `http` setting for `guahao serve`: ours where this uvicorn has the hook it relies on."""
    if HttpToolsProtocol is None or not all(hasattr(HttpToolsProtocol, a) for a in _RELIES_ON):
        return "auto"
    return "guahao.serving:InlineHttpTools"
