"""A live HTTP server (uvicorn in a thread, with `guahao serve`'s HTTP protocol and so its inline answers)
over the test database, for races through the real stack."""

import socket
import threading
import time

import pytest
import uvicorn

from guahao import serving
from guahao.app import create_app
from guahao.clock import SystemClock
from guahao.config import Settings

PORTS = range(8320, 8400)  # this suite's share of the sandbox's ports


def free_port() -> int:
    for port in PORTS:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 8320–8399")


class LiveServer:
    def __init__(self, app):
        self.app = app
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                                    access_log=False, lifespan="off", backlog=2048,
                                                    http=serving.http_protocol()))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("live server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(15)
        self.app.state.gate.stop()


@pytest.fixture
def live_server_factory(db):
    """Start a live server over the test database: `live_server_factory(redis_url=...)`."""
    started = []

    def start(redis_url: str | None = None, prefix: str | None = None) -> LiveServer:
        settings = Settings(redis_url=redis_url, redis_prefix=prefix or f"guahao:test:{time.time_ns()}:")
        srv = LiveServer(create_app(settings, db=db, clock=SystemClock())).__enter__()
        started.append(srv)
        return srv

    yield start
    for srv in started:
        srv.__exit__(None, None, None)


@pytest.fixture
def live_server(live_server_factory):
    return live_server_factory()
