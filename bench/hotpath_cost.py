"""What the release storm's two hot answers cost inside the application: CPU per ASGI call, no server.

    .venv/bin/python bench/hotpath_cost.py [--n 3000] [--rounds 5] [--profile refused|page|inline-refused|inline-page]

At the release instant nearly every request is a booking attempt the gate refuses (SESSION_FULL) or a
refresh of a page that has not changed (304). This calls the app in-process for each (SQLite in a temporary
directory, the rate limits counted in process memory, or in Redis with `--redis`), in alternating rounds, and prints the
median microseconds of CPU per request: a steadier figure for comparing a change than the burst's latency
on a shared machine. The server's own per-request cost (sockets, the event loop) is not in it. `refused`
and `page` go through the whole ASGI app; `inline-refused` and `inline-page` are the same requests' bytes
given to `guahao serve`'s inline answers (guahao/release/inline.py), the rate limits' counts included.
"""

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def setup(patients: int = 200, redis_url: str | None = None):
    tmp = tempfile.mkdtemp(prefix="guahao-hotpath-")
    os.environ.update(GUAHAO_SECRET_KEY="bench-only-secret-key-0123456789abcdef",
                      GUAHAO_DATA_KEY="bench-only-data-key-0123456789abcdef0",
                      GUAHAO_DATABASE_URL=f"sqlite:///{tmp}/hotpath.sqlite",
                      GUAHAO_ARGON2_TIME_COST="1", GUAHAO_ARGON2_MEMORY_KIB="1024",
                      # Counted as in production, thresholds out of the way (as bench/release_burst.py does).
                      GUAHAO_RATE_BOOKING_IP="100000000/60", GUAHAO_RATE_BOOKING_ACCOUNT="100000000/60",
                      GUAHAO_RATE_BOOKING_PERSON="100000000/60")
    os.environ.pop("GUAHAO_REDIS_URL", None)
    if redis_url:  # the rate limits counted in Redis, as in production (the gate is not subscribed here)
        os.environ.update(GUAHAO_REDIS_URL=redis_url, GUAHAO_REDIS_PREFIX="guahao:hotpath:")
    from bench import scenario
    from guahao.accounts.security import issue_token
    from guahao.app import create_app
    from guahao.migrate import upgrade

    app = create_app()
    upgrade(app.state.db.engine)
    now = app.state.clock.now()
    sc = scenario.Scenario(patients=patients, sessions=2, per_session=10)
    world = scenario.seed(app.state.db, sc, (now + timedelta(days=3)).date(), now - timedelta(hours=1), now)
    from sqlalchemy import update

    from guahao.schedule.models import ClinicSession

    with app.state.db.transaction() as s:  # full in the database too: nothing here may book
        s.execute(update(ClinicSession).where(ClinicSession.id.in_(world.session_ids))
                  .values(booked=ClinicSession.capacity))
    gate = app.state.gate
    gate.ttl_alone = 3600.0  # what the gate learned stays for the whole measurement (1 s without Redis)
    gate.remember_slots((sl, sid) for sid, sls in world.slots.items() for sl in sls)
    for sid, sls in world.slots.items():  # every session full, as the gate learns it at T
        gate.booked(sls[0], sid, 0, gate.generation, publish=False)
    tokens = [issue_token(str(a), "account", datetime.now(timezone.utc)) for a, _, _ in world.patients]
    slots = [sl for sls in world.slots.values() for sl in sls]
    return app, world, tokens, slots


def scope_of(method: str, path: str, headers: list, query: bytes = b"") -> dict:
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
            "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": query,
            "root_path": "", "headers": headers, "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80)}


async def call(app, scope: dict, body: bytes = b"") -> tuple[int, bytes]:
    status, out = 0, []

    async def receive():
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message):
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        else:
            out.append(message.get("body", b""))
    await app(scope, receive, send)
    return status, b"".join(out)


def requests(world, tokens, slots):
    """(name, list of (scope, body)) for each hot answer, varied over patients and numbers."""
    refused = []
    for i, (tok, (_, pid, _)) in enumerate(zip(tokens, world.patients)):
        body = json.dumps(dict(slot_id=slots[i % len(slots)], patient_id=pid, insurance_type="self_pay")).encode()
        refused.append((scope_of("POST", "/api/v1/appointments", [
            (b"host", b"bench"), (b"authorization", f"Bearer {tok}".encode()),
            (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]), body))
    query = f"department_id={world.department_id}&date={world.visit_date}".encode()
    return {"refused": refused, "page": query, "inline-refused": refused, "inline-page": query}


def raw_of(scope: dict, body: bytes) -> bytes:
    q = scope["query_string"]
    target = scope["path"].encode() + (b"?" + q if q else b"")
    head = [scope["method"].encode() + b" " + target + b" HTTP/1.1"]
    head += [k + b": " + v for k, v in scope["headers"]]
    return b"\r\n".join(head) + b"\r\n\r\n" + body


async def measure_inline(app, name, reqs, n: int, etag: str) -> float:
    if name == "inline-page":
        work = [raw_of(scope_of("GET", "/api/v1/slots", [(b"host", b"bench"), (b"if-none-match", etag.encode())],
                                reqs), b"")] * n
        expected = 304
    else:
        work = [raw_of(*reqs[i % len(reqs)]) for i in range(n)]
        expected = 409
    inline, client, wrong = app.state.inline, ("127.0.0.1", 1), 0
    t = time.process_time()
    for i, raw in enumerate(work):
        answer = inline.answer(raw, client)
        if answer is None or answer[0] != expected:
            wrong += 1
        elif answer[2] is not None:
            answer[2]()
        if i % 64 == 63:  # the loop's turn: the counts gathered meanwhile leave in one Redis call
            await asyncio.sleep(0)
    await _settled(app)
    took = time.process_time() - t
    if wrong:
        raise RuntimeError(f"{wrong} of {n} '{name}' requests were not answered inline with {expected}")
    return took / n * 1e6


async def _settled(app) -> None:
    """Every count sent has come back (its CPU is the answer's)."""
    redis = app.state.limiter.redis
    while redis is not None and redis.counts_pending():
        await asyncio.sleep(0.001)


async def measure(app, name, reqs, n: int, etag: str | None = None) -> float:
    if name.startswith("inline-"):
        return await measure_inline(app, name, reqs, n, etag)
    if name == "page":
        headers = [(b"host", b"bench"), (b"if-none-match", etag.encode())]
        scope = scope_of("GET", "/api/v1/slots", headers, reqs)
        work = [(scope, b"")] * n
    else:
        work = [reqs[i % len(reqs)] for i in range(n)]
    expected = 304 if name == "page" else 409
    wrong = 0
    t = time.process_time()
    for scope, body in work:
        status, _ = await call(app, scope, body)
        wrong += status != expected
    took = time.process_time() - t
    if wrong:
        raise RuntimeError(f"{wrong} of {n} '{name}' requests were not answered {expected}")
    return took / n * 1e6


async def run(args) -> dict:
    app, world, tokens, slots = setup(redis_url=args.redis)
    reqs = requests(world, tokens, slots)
    # Each answer checked once before timing: a refusal, and a page then its 304.
    status, body = await call(app, *reqs["refused"][0])
    assert status == 409 and json.loads(body)["error"]["code"] == "SESSION_FULL", (status, body)
    page_scope = scope_of("GET", "/api/v1/slots", [(b"host", b"bench")], reqs["page"])
    app.state.availability.ttl = 3600  # one rendering serves the whole measurement (a 0.5 s page otherwise)
    status, body = await call(app, page_scope)
    assert status == 200
    etag = app.state.availability.peek(_key(world), app.state.clock.now()).etag
    for name in ("refused", "page"):  # warm-up: tokens verified and remembered, as before T
        await measure(app, name, reqs[name], len(reqs["refused"]), etag)
    _people_ahead(app, world)
    out: dict = {"refused": [], "page": [], "inline-refused": [], "inline-page": []}
    for _ in range(args.rounds):
        for name in out:
            out[name].append(await measure(app, name, reqs[name], args.n, etag))
    if args.profile:
        from pyinstrument import Profiler

        prof = Profiler(interval=0.0001)
        prof.start()
        await measure(app, args.profile, reqs[args.profile], args.n, etag)
        prof.stop()
        print(prof.output_text(unicode=True, color=False))
    return out


def _people_ahead(app, world) -> None:
    """The persons behind the patients, as a refresh before T has this process read them (guards.py)."""
    from sqlalchemy import text

    with app.state.db.reading() as s:
        rows = s.execute(text("SELECT account_id, id, person_id FROM patients")).all()
    app.state.person_of = {(a, p): person for a, p, person in rows}


def _key(world):
    return (world.department_id, None, world.visit_date, None)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=3000)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--profile", choices=("refused", "page", "inline-refused", "inline-page"))
    p.add_argument("--redis", help="count the rate limits in this Redis (production's path), e.g. "
                                   "redis://127.0.0.1:6379/1; default: in process memory")
    p.add_argument("--json", help="write the figures here")
    args = p.parse_args(argv)
    out = asyncio.run(run(args))
    result = {name: dict(median_us=round(statistics.median(v), 1), rounds=[round(x, 1) for x in v])
              for name, v in out.items()}
    for name, r in result.items():
        print(f"{name:8s} {r['median_us']:7.1f} µs CPU per request (rounds: {r['rounds']})")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
