"""guahao serve's HTTP protocol (guahao/serving.py): each answer's head and body leave in one write."""

import asyncio

import pytest

from guahao import serving

pytestmark = pytest.mark.skipif(serving.http_protocol() == "auto", reason="uvicorn without httptools")


class Recorder(asyncio.Transport):
    def __init__(self):
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data):
        self.writes.append(bytes(data))

    def close(self):
        self.closed = True

    def is_closing(self):
        return self.closed

    def get_extra_info(self, name, default=None):
        return {"peername": ("127.0.0.1", 5000), "sockname": ("127.0.0.1", 8000)}.get(name, default)

    def pause_reading(self):
        pass

    def resume_reading(self):
        pass


async def _serve(app, request: bytes, protocol_class) -> Recorder:
    import uvicorn
    from uvicorn.server import ServerState

    config = uvicorn.Config(app, http=protocol_class, lifespan="off", access_log=False)
    config.load()
    proto = config.http_protocol_class(config=config, server_state=ServerState(), app_state={},
                                       _loop=asyncio.get_running_loop())
    transport = Recorder()
    proto.connection_made(transport)
    proto.data_received(request)
    for _ in range(20):
        await asyncio.sleep(0.005)
    return transport


def _app(status=200, body=b'{"error": {"code": "SESSION_FULL"}}', fail_after_start=False):
    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode())]})
        if fail_after_start:
            raise RuntimeError("boom")
        await send({"type": "http.response.body", "body": body})
    return app


GET = b"GET /api/v1/slots HTTP/1.1\r\nHost: x\r\n\r\n"


def test_an_answer_leaves_in_one_write_where_uvicorn_makes_two():
    ours = asyncio.run(_serve(_app(409), GET, serving.http_protocol()))
    stock = asyncio.run(_serve(_app(409), GET, "httptools"))
    assert len(stock.writes) == 2  # what this fixes: head, then body
    assert len(ours.writes) == 1
    assert ours.writes[0] == b"".join(stock.writes)
    assert ours.writes[0].startswith(b"HTTP/1.1 409 ") and ours.writes[0].endswith(b'"SESSION_FULL"}}')


def test_keep_alive_answers_each_leave_whole():
    t = asyncio.run(_serve(_app(), GET + GET, serving.http_protocol()))
    assert len(t.writes) == 2 and all(w.endswith(b'"SESSION_FULL"}}') for w in t.writes)


def test_a_304_and_a_head_answer_are_sent_too():
    t = asyncio.run(_serve(_app(304, b""), GET, serving.http_protocol()))
    assert len(t.writes) == 1 and t.writes[0].startswith(b"HTTP/1.1 304 ")
    head = asyncio.run(_serve(_app(), b"HEAD /api/v1/slots HTTP/1.1\r\nHost: x\r\n\r\n", serving.http_protocol()))
    assert len(head.writes) == 1 and head.writes[0].startswith(b"HTTP/1.1 200 ")
    assert head.writes[0].endswith(b"\r\n\r\n")


def test_an_application_failing_after_its_head_still_sends_it_then_closes():
    t = asyncio.run(_serve(_app(fail_after_start=True), GET, serving.http_protocol()))
    assert t.closed and len(t.writes) == 1 and t.writes[0].startswith(b"HTTP/1.1 200 ")
