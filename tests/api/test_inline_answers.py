"""guahao serve's protocol answers the storm's sure refusals and cached pages as their bytes arrive
(guahao/release/inline.py): the same bytes as the usual way, and anything unusual still goes the usual way."""

import asyncio
import json
import re
from datetime import date

import pytest
import time_machine
from sqlalchemy import text

from guahao import serving
from tests.recording_transport import connect
from guahao.release import inline as inline_mod
from guahao.security.ratelimit import RateLimiter

from tests import factories as f

pytestmark = pytest.mark.skipif(serving.http_protocol() == "auto", reason="uvicorn without httptools")

NOW = f.local_dt(2026, 12, 1, 10, 0)
D1 = date(2026, 12, 2)


def serve(app, *chunks: bytes, inline: bool = True) -> tuple[list[bytes], list[bytes]]:
    """Feed `chunks` to one connection of guahao serve's protocol; (writes made while the chunks were being
    received, before any task ran; all answers written, whole)."""
    from uvicorn.server import ServerState

    async def run():
        state = ServerState()
        state.default_headers = [(b"date", b"Tue, 01 Dec 2026 02:00:00 GMT"), (b"server", b"uvicorn")]
        proto, t = connect(app, serving.http_protocol(), state)
        if not inline:
            proto._inline = None
        for chunk in chunks:
            proto.data_received(chunk)
        at_once = list(t.writes)
        for _ in range(100):
            await asyncio.sleep(0.002)
            if not state.tasks and len(t.writes) >= 1 and not proto.pipeline:
                await asyncio.sleep(0.01)
                if not state.tasks:
                    break
        return at_once, t.writes
    at_once, writes = asyncio.run(run())
    # The usual way writes an answer's head and body separately: whole answers, one per item.
    return at_once, _answers(b"".join(writes))


def _answers(data: bytes) -> list[bytes]:
    out = []
    while data:
        head, _, rest = data.partition(b"\r\n\r\n")
        length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                       if line.lower().startswith(b"content-length:")), 0)
        out.append(head + b"\r\n\r\n" + rest[:length])
        data = rest[length:]
    return out


def request(method: str, path: str, headers: dict, body: bytes = b"") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: testserver"] + [f"{k}: {v}" for k, v in headers.items()]
    if method == "POST":
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def booking(headers: dict, slot_id: int, patient_id: int, extra: dict | None = None) -> bytes:
    body = json.dumps(dict(slot_id=slot_id, patient_id=patient_id, insurance_type="local")).encode()
    return request("POST", "/api/v1/appointments", {**headers, **(extra or {})}, body)


@pytest.fixture
def full(client, db):
    """A session of 2 numbers, both booked; a third patient logged in; the gate has learned it is full.
    The test runs inside the fixture's travel: the cache's and the gate's times must not go back."""
    with time_machine.travel(NOW):
        with db.transaction() as s:
            h = f.hospital(s)
            dep = f.department(s, h, "心血管内科")
            doc = f.doctor(s, dep)
            slots = f.slot_ids(s, f.session(s, doc, D1, "AM", capacity=2))
        users = [f.signup(client) for _ in range(3)]
        for (hd, pid, _), sid in zip(users, slots):
            assert client.post("/api/v1/appointments", headers=hd,
                               json=dict(slot_id=sid, patient_id=pid, insurance_type="local")).status_code == 201
        hd, pid, _ = users[2]
        r = client.post("/api/v1/appointments", headers=hd,
                        json=dict(slot_id=slots[0], patient_id=pid, insurance_type="local"))
        assert r.json()["error"]["code"] in ("SLOT_TAKEN", "SESSION_FULL")
        yield dict(headers=hd, patient=pid, slots=slots, department=dep.id)


def test_a_refusal_the_gate_knows_is_answered_at_once_with_the_usual_bytes(app, full):
    raw = booking(full["headers"], full["slots"][1], full["patient"])
    at_once, writes = serve(app, raw)
    _, usual = serve(app, raw, inline=False)
    assert len(at_once) == 1 and writes == at_once  # written inside data_received: no task, no await
    assert at_once[0].startswith(b"HTTP/1.1 409 Conflict\r\n")
    assert json.loads(at_once[0].split(b"\r\n\r\n", 1)[1])["error"]["code"] == "SESSION_FULL"
    assert at_once == usual  # byte for byte, headers included


def test_a_cached_page_and_its_304_are_answered_at_once_with_the_usual_bytes(app, client, full):
    # Fresh for the whole test: on a busy machine the default 0.5 s ran out between the rendering and the
    # inline answer, which then (rightly) went the usual way.
    app.state.availability.ttl = 60.0
    path = f"/api/v1/slots?department_id={full['department']}&date={D1}"
    for headers in ({}, {"If-None-Match": "x"}, {"Authorization": full["headers"]["Authorization"]}):
        etag = client.get(path).headers["etag"]  # rendered and cached
        headers = {k: (etag if v == "x" else v) for k, v in headers.items()}
        raw = request("GET", path, headers)
        at_once, _ = serve(app, raw)
        _, usual = serve(app, raw, inline=False)
        assert len(at_once) == 1 and at_once == usual, headers
        assert at_once[0].startswith(b"HTTP/1.1 304 " if headers.get("If-None-Match") else b"HTTP/1.1 200 ")


@pytest.mark.parametrize("name", ["idempotency", "cookie", "split", "pipelined", "close", "http10", "forwarded",
                                  "free_number", "bad_token", "bad_body"])
def test_anything_unusual_goes_the_usual_way(app, full, name):
    hd, pid, slot = full["headers"], full["patient"], full["slots"][1]
    raw = booking(hd, slot, pid)
    chunks = {
        "idempotency": [booking(hd, slot, pid, {"Idempotency-Key": "k-1"})],
        "cookie": [booking(hd, slot, pid, {"Cookie": "a=b"})],
        "split": [raw[:40], raw[40:]],
        "pipelined": [raw + raw],
        "close": [booking(hd, slot, pid, {"Connection": "close"})],
        "http10": [raw.replace(b"HTTP/1.1", b"HTTP/1.0", 1)],
        "forwarded": [booking(hd, slot, pid, {"X-Forwarded-For": "10.1.2.3"})],
        "free_number": [booking(hd, 10**6, pid)],
        "bad_token": [booking({"Authorization": "Bearer nope"}, slot, pid)],
        "bad_body": [raw.replace(b'"local"', b'"lokal"')],
    }[name]
    at_once, writes = serve(app, *chunks)
    assert at_once == [] and writes  # answered, but by the application's task
    if name in ("idempotency", "cookie", "split", "close", "forwarded"):
        assert b'"SESSION_FULL"' in writes[0]
    if name == "pipelined":
        assert len(writes) == 2
    if name == "bad_token":
        assert writes[0].startswith(b"HTTP/1.1 401 ")


def test_the_rate_limit_still_counts_and_its_429_comes_the_usual_way(app, full):
    """Limits on (process memory): refusals answered at once spend the budget; once it is spent the
    attempt goes the usual way and gets the 429."""
    app.state.limiter = RateLimiter(None, enabled=True)
    app.state.settings = app.state.settings.model_copy(update={"rate_booking_account": "2/60"})
    raw = booking(full["headers"], full["slots"][1], full["patient"])
    first, second, third = serve(app, raw), serve(app, raw), serve(app, raw)
    assert len(first[0]) == 1 and b'"SESSION_FULL"' in first[0][0]
    assert len(second[0]) == 1 and b'"SESSION_FULL"' in second[0][0]
    assert third[0] == [] and third[1][0].startswith(b"HTTP/1.1 429 ") and b"retry-after" in third[1][0].lower()


def test_a_refusal_for_a_patient_not_met_yet_is_answered_at_once_and_counts_the_person_once_read(app, full, db):
    """The person behind the patient is not known to this process: the refusal does not wait for the
    look-up; the person is read after the answer and their budget spent (here 2: the third attempt is the
    usual way's 429)."""
    from uvicorn.server import ServerState

    from guahao.security import guards

    app.state.limiter = RateLimiter(None, enabled=True)
    app.state.settings = app.state.settings.model_copy(update={"rate_booking_person": "2/60"})
    app.state.person_of = {}
    with db.reading() as s:
        account, person = s.execute(text("SELECT account_id, person_id FROM patients WHERE id = :p"),
                                    dict(p=full["patient"])).one()
    raw = booking(full["headers"], full["slots"][1], full["patient"])

    async def run():
        state = ServerState()
        state.default_headers = [(b"date", b"Tue, 01 Dec 2026 02:00:00 GMT"), (b"server", b"uvicorn")]
        proto, t = connect(app, serving.http_protocol(), state)
        proto.data_received(raw)
        at_once = list(t.writes)
        assert guards.known_person_of(app.state, account, full["patient"]) is None  # not read yet
        await asyncio.gather(*list(guards._counting))
        return at_once
    at_once = asyncio.run(run())
    assert len(at_once) == 1 and b'"SESSION_FULL"' in at_once[0]
    assert guards.known_person_of(app.state, account, full["patient"]) == person
    second, third = serve(app, raw), serve(app, raw)
    assert len(second[0]) == 1 and b'"SESSION_FULL"' in second[0][0]
    assert third[0] == [] and third[1][0].startswith(b"HTTP/1.1 429 ")


def test_parse_takes_exactly_one_whole_plain_request():
    ok = b"GET /api/v1/slots?department_id=1 HTTP/1.1\r\nHost: x\r\nIf-None-Match: \"a\"\r\n\r\n"
    p = inline_mod.parse(ok)
    assert p.method == b"GET" and p.query == b"department_id=1" and p.headers[b"if-none-match"] == b'"a"'
    for bad in (ok[:-2], ok + ok, ok.replace(b"Host: x", b"Host: x\r\nHost: y"),
                ok.replace(b"Host: x", b"Ho st: x"), ok.replace(b"Host: x", b"X-Unknown: 1"),
                ok.replace(b"Host: x", b"Host: \x01"), ok.replace(b"HTTP/1.1", b"HTTP/1.0"),
                ok.replace(b"\r\nHost", b"\nHost"), b"GET / HTTP/1.1\r\nContent-Length: 5\r\n\r\nab"):
        assert inline_mod.parse(bad) is None, bad


def test_no_date_header_is_invented():
    # The answer's date and server lines are the server's own (uvicorn's default headers, renewed each
    # second), not cached with the answer.
    tail = inline_mod._refusal_tail("SESSION_FULL", "该出诊已约满", 409)
    assert not re.search(rb"^(date|server):", tail, re.I | re.M)
