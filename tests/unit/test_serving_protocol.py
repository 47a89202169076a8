"""guahao serve's HTTP protocol (guahao/serving.py) answers the usual way exactly as uvicorn's own does
(its inline answers are tested in tests/api/test_inline_answers.py)."""

import asyncio

import pytest

from guahao import serving
from tests.recording_transport import Recorder, connect

pytestmark = pytest.mark.skipif(serving.http_protocol() == "auto", reason="uvicorn without httptools")


async def _serve(app, request: bytes, protocol_class) -> Recorder:
    proto, transport = connect(app, protocol_class)
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


def test_an_answer_is_uvicorns_byte_for_byte():
    ours = asyncio.run(_serve(_app(409), GET, serving.http_protocol()))
    stock = asyncio.run(_serve(_app(409), GET, "httptools"))
    assert b"".join(ours.writes) == b"".join(stock.writes)
    assert ours.writes[0].startswith(b"HTTP/1.1 409 ") and ours.writes[-1].endswith(b'"SESSION_FULL"}}')


def test_keep_alive_answers_each_arrive_whole():
    t = asyncio.run(_serve(_app(), GET + GET, serving.http_protocol()))
    assert b"".join(t.writes).count(b'"SESSION_FULL"}}') == 2 and not t.closed


def test_a_304_and_a_head_answer_are_sent_too():
    t = asyncio.run(_serve(_app(304, b""), GET, serving.http_protocol()))
    assert b"".join(t.writes).startswith(b"HTTP/1.1 304 ")
    head = asyncio.run(_serve(_app(), b"HEAD /api/v1/slots HTTP/1.1\r\nHost: x\r\n\r\n", serving.http_protocol()))
    assert b"".join(head.writes).startswith(b"HTTP/1.1 200 ") and b"".join(head.writes).endswith(b"\r\n\r\n")


def test_an_application_failing_after_its_head_still_sends_it_then_closes():
    t = asyncio.run(_serve(_app(fail_after_start=True), GET, serving.http_protocol()))
    assert t.closed and b"".join(t.writes).startswith(b"HTTP/1.1 200 ")
