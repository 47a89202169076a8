"""Abuse resistance: per account, per person, per address limits on booking and login (429 +
Retry-After), shared across processes through Redis, surviving a Redis outage; schedule reads never limited."""

import time

import pytest
from fastapi.testclient import TestClient

from guahao.errors import DomainError
from guahao.security.ratelimit import MemoryBackend, Rate, RateLimiter
from tests import factories as f
from tests.security.conftest import limited_settings, port
from tests.security.redis_server import private_redis


def _client(db, **settings):
    from guahao.app import create_app
    from guahao.clock import SystemClock

    settings.setdefault("trusted_proxies", ["127.0.0.1/32"])
    app = create_app(limited_settings(**settings), db=db, clock=SystemClock())
    return TestClient(app, raise_server_exceptions=False, client=("127.0.0.1", 50000))


def _from(ip: str, headers: dict | None = None) -> dict:
    return {**(headers or {}), "X-Forwarded-For": ip}


def _limited(r) -> int:
    assert r.status_code == 429, r.text
    assert r.json()["error"]["code"] == "RATE_LIMITED"
    retry = int(r.headers["Retry-After"])
    assert 1 <= retry <= 3600 and r.json()["error"]["details"]["retry_after"] == retry
    return retry


def test_rate_parse_and_memory_window():
    assert Rate.parse("10/60") == Rate(10, 60.0)
    for bad in ("0/60", "10", "x/1", "5/0"):
        with pytest.raises(ValueError):
            Rate.parse(bad)
    now = [1000.0]
    m = MemoryBackend(clock=lambda: now[0])
    assert [m.hit("k", 60)[0] for _ in range(3)] == [1, 2, 3]
    now[0] += 59.9
    assert m.hit("k", 60)[0] == 4
    now[0] += 0.2  # the window has ended: a fresh count
    assert m.hit("k", 60) == (1, 60)


def test_limit_keys_are_the_hashed_names_and_a_bad_rate_is_refused_every_time():
    import hashlib

    from guahao.security.ratelimit import PREFIX, _keys

    keys, rates = _keys([("book-ip:10.0.0.1", "300/60"), ("book-person:7", Rate(10, 60.0))])
    assert keys == [f"{PREFIX}book-ip:60:{hashlib.sha256(b'book-ip:10.0.0.1').hexdigest()[:32]}",
                    f"{PREFIX}book-person:60:{hashlib.sha256(b'book-person:7').hexdigest()[:32]}"]
    assert rates == [Rate(300, 60.0), Rate(10, 60.0)]
    assert _keys([("book-ip:10.0.0.1", "300/60")])[0] == keys[:1]  # remembered: the same key again
    for _ in range(2):  # a failure is not remembered as an answer
        with pytest.raises(ValueError):
            _keys([("book-ip:10.0.0.1", "0/60")])


def test_settings_refuse_a_malformed_rate():
    from pydantic import ValidationError

    from guahao.config import Settings

    with pytest.raises(ValidationError):
        Settings(rate_booking_account="ten per minute")
    with pytest.raises(ValidationError):
        Settings(trusted_proxies=["10.0.0.0/33"])


def test_scalper_script_is_limited_while_a_human_books(client, world):
    """50 attempts in a burst from one account: the first 10 are served, the rest get 429 fast;
    a human on another account (same address — a hospital NAT) books normally."""
    c = _client(client.app.state.db)
    slots = world["slots"]
    scalper, scalper_patient, _ = f.signup(client)
    answers = []
    started = time.monotonic()
    for i in range(50):
        r = c.post("/api/v1/appointments", headers=_from("203.0.113.9", scalper),
                   json=dict(slot_id=slots[1 + i % 3], patient_id=scalper_patient, insurance_type="self_pay"))
        answers.append(r.status_code)
        if r.status_code == 429:
            _limited(r)
    assert time.monotonic() - started < 20
    assert answers.count(429) == 40 and 429 not in answers[:10]
    assert all(s in (201, 409) for s in answers[:10])
    human, human_patient, _ = f.signup(client, name="张三")
    r = c.post("/api/v1/appointments", headers=_from("203.0.113.9", human),
               json=dict(slot_id=slots[4], patient_id=human_patient, insurance_type="self_pay"))
    assert r.status_code == 201, r.text
    # Refreshing the schedule, even far faster than a human, is never limited.
    for _ in range(200):
        assert c.get(f"/api/v1/slots?doctor_id={world['doc1']}", headers=_from("203.0.113.9")).status_code == 200


def test_one_person_across_many_accounts_shares_one_budget(client, world):
    """A scalper farm adds the same ID number under several accounts: the per-person limit still holds."""
    c = _client(client.app.state.db, rate_booking_account="10/60", rate_booking_person="6/60")
    idn = f.id_number()
    farm = []
    for i in range(3):
        h, _, _ = f.signup(client, name="王五")
        pid = client.post("/api/v1/patients", headers=h, json=dict(
            name="赵六", id_number=idn, phone=f.phone(), relation="其他")).json()["id"]
        farm.append((h, pid))
    codes = []
    for i in range(9):
        h, pid = farm[i % 3]
        r = c.post("/api/v1/appointments", headers=_from(f"198.51.100.{i}", h),
                   json=dict(slot_id=world["slots"][3], patient_id=pid, insurance_type="self_pay"))
        codes.append(r.status_code)
    assert codes[:6].count(429) == 0 and codes[6:] == [429, 429, 429]


def test_per_address_limit_on_booking(client, world):
    c = _client(client.app.state.db, rate_booking_ip="5/60")
    users = [f.signup(client) for _ in range(7)]
    codes = [c.post("/api/v1/appointments", headers=_from("192.0.2.50", h),
                    json=dict(slot_id=world["slots"][2], patient_id=p, insurance_type="self_pay")).status_code
             for h, p, _ in users[:6]]
    assert codes[5] == 429 and 429 not in codes[:5]
    # Another address is unaffected.
    h, p, _ = users[6]
    r = c.post("/api/v1/appointments", headers=_from("192.0.2.51", h),
               json=dict(slot_id=world["slots"][2], patient_id=p, insurance_type="self_pay"))
    assert r.status_code in (201, 409)


def test_forwarded_for_is_ignored_from_untrusted_peers(client, world):
    """Without a trusted proxy, rotating X-Forwarded-For does not dodge the per-address limit."""
    c = _client(client.app.state.db, rate_booking_ip="3/60", trusted_proxies=[])
    h, p, _ = f.signup(client)
    codes = [c.post("/api/v1/appointments", headers=_from(f"10.9.9.{i}", h),
                    json=dict(slot_id=world["slots"][1], patient_id=p, insurance_type="self_pay")).status_code
             for i in range(4)]
    assert codes[3] == 429


def test_login_brute_force_and_credential_stuffing(client, world):
    c = _client(client.app.state.db, rate_login_phone="5/300", rate_login_ip="8/60")
    phone = world["a_phone"]
    codes = [c.post("/api/v1/auth/token", headers=_from("203.0.113.1"),
                    data=dict(username=phone, password=f"wrong{i}pass")).status_code for i in range(6)]
    assert codes == [401] * 5 + [429]
    _limited(c.post("/api/v1/auth/token", headers=_from("203.0.113.2"),
                    data=dict(username=phone, password="secret123")))
    # Stuffing: many phones from one address.
    codes = [c.post("/api/v1/auth/token", headers=_from("203.0.113.3"),
                    data=dict(username=f.phone(), password="Password1")).status_code for _ in range(9)]
    assert codes == [401] * 8 + [429]
    # Staff login is limited the same way.
    codes = [c.post("/api/v1/staff/token", headers=_from("203.0.113.4"),
                    data=dict(username="h1-admin", password="bad-guess-1")).status_code for _ in range(6)]
    assert codes[-1] == 429


def test_redis_limits_are_shared_between_processes_and_survive_an_outage():
    """Two limiters (as in two server processes) share one Redis counter; when Redis dies, hits fall
    back to process memory at once and never raise anything but RATE_LIMITED."""
    from guahao.errors import DomainError

    with private_redis(port(31)) as r:
        a, b = RateLimiter(r.url), RateLimiter(r.url)
        key = f"test:shared:{time.time_ns()}"
        for lim in (a, b, a, b):
            lim.hit(key, "4/60")
        with pytest.raises(DomainError) as e:
            b.hit(key, "4/60")
        assert e.value.code == "RATE_LIMITED" and 1 <= e.value.details["retry_after"] <= 60
        import redis

        stored = redis.Redis.from_url(r.url).keys("guahao:rl:*")
        assert stored and all(key.encode() not in k for k in stored)  # keys are hashed
        r.stop()
        started = time.monotonic()
        for _ in range(3):
            a.hit("test:after-outage", "5/60")  # memory fallback: counts, does not fail
        assert time.monotonic() - started < 2
        with pytest.raises(DomainError):
            for _ in range(3):
                a.hit("test:after-outage", "5/60")


def test_sms_guard_for_the_sms_endpoint(client):
    """The SMS endpoint (another branch) calls guards.sms_attempt: one code a minute per phone (A1),
    a daily cap per phone, and a cap per address."""
    from starlette.requests import Request

    from guahao.errors import DomainError
    from guahao.security.guards import sms_attempt

    c = _client(client.app.state.db, rate_sms_ip="3/3600")
    app = c.app

    def request(ip: str) -> Request:
        return Request({"type": "http", "app": app, "client": (ip, 1), "headers": [], "method": "POST",
                        "path": "/api/v1/sms-codes", "query_string": b""})

    sms_attempt(request("192.0.2.1"), "13800138000")
    with pytest.raises(DomainError) as e:
        sms_attempt(request("192.0.2.2"), "13800138000")  # same phone within 60 s, from anywhere
    assert e.value.code == "RATE_LIMITED" and 50 <= e.value.details["retry_after"] <= 60
    sms_attempt(request("192.0.2.1"), "13800138001")
    sms_attempt(request("192.0.2.1"), "13800138002")
    with pytest.raises(DomainError):
        sms_attempt(request("192.0.2.1"), "13800138003")  # 4th from one address within the hour


def test_sms_code_endpoint_is_limited_per_address(db):
    """POST /api/v1/sms-codes goes through the guard: the 4th code from one address within the hour is
    refused with 429 and Retry-After, before any code is made or sent."""
    from sqlalchemy import func, select

    from guahao.notifications.models import SmsCode

    c = _client(db, rate_sms_ip="3/3600")
    for i in range(3):
        r = c.post("/api/v1/sms-codes", headers=_from("198.51.100.7"), json=dict(phone=f"1390000000{i}",
                                                                                  purpose="signup"))
        assert r.status_code == 202, r.text
    r = c.post("/api/v1/sms-codes", headers=_from("198.51.100.7"), json=dict(phone="13900000009", purpose="signup"))
    assert r.status_code == 429 and int(r.headers["Retry-After"]) > 0, r.text
    with db.reading() as s:
        assert s.scalar(select(func.count(SmsCode.id))) == 3
    # Another address is not affected.
    r = c.post("/api/v1/sms-codes", headers=_from("198.51.100.8"), json=dict(phone="13900000008", purpose="signup"))
    assert r.status_code == 202, r.text


def test_limits_are_shared_by_server_processes_through_redis(tmp_path):
    """A real server with two worker processes and Redis: a scalper's 40 attempts, each on a fresh
    connection (so both processes serve them), get exactly the account's budget of 10, not 10 per process."""
    import httpx

    from tests.security.burst import SERVER_NOW, seed
    from tests.security.server import base_env, serve

    url = f"sqlite:///{tmp_path / 'shared.db'}"
    w = seed(url, accounts=2, capacity=10)
    (scalper, pid), (human, human_pid) = w.accounts
    with private_redis(port(35)) as redis:
        env = base_env(url, GUAHAO_NOW=SERVER_NOW, GUAHAO_REDIS_URL=redis.url, GUAHAO_RATE_LIMIT_ENABLED="true")
        with serve(port(48), env, workers=2) as base:
            codes = []
            for i in range(40):
                with httpx.Client(base_url=base, timeout=15) as c:  # new connection each time
                    r = c.post("/api/v1/appointments", headers=scalper,
                               json=dict(slot_id=w.slots[i % 10], patient_id=pid, insurance_type="self_pay"))
                    codes.append(r.status_code)
            with httpx.Client(base_url=base, timeout=15) as c:
                r = c.post("/api/v1/appointments", headers=human,
                           json=dict(slot_id=w.slots[9], patient_id=human_pid, insurance_type="self_pay"))
    assert len(codes) - codes.count(429) == 10, codes
    assert r.status_code == 201, r.text


def test_attempts_counted_together_get_each_their_own_exact_count():
    """At the release instant many attempts are counted in one Redis call (ratelimit._Batches): each must
    still get the count its own call would have — no increment lost, none shared — and fewer round trips."""
    import asyncio

    from guahao.security.ratelimit import RedisBackend

    with private_redis(port(36)) as r:
        backend = RedisBackend(r.url)
        backend._pipe = None  # redis-py's client, as for rediss:// or unix:// (the pipe: test_redis_pipe.py)

        async def main():
            calls = []
            await backend.hit_many_async(["warm"], [60])  # builds the loop's client and batcher
            batches = backend._async[1]
            script = batches.script

            async def counted(**kw):
                calls.append(len(kw["keys"]))
                return await script(**kw)
            batches.script = counted
            answers = await asyncio.gather(*(backend.hit_many_async(["a", f"own{i}"], [60, 60])
                                             for i in range(200)))
            return answers, calls
        answers, calls = asyncio.run(main())
    shared = sorted(a[0][0] for a in answers)
    assert shared == list(range(1, 201))  # "a" counted 200 times, each caller saw its own count
    assert all(a[1][0] == 1 for a in answers)  # each caller's own key counted once
    assert sum(calls) == 400 and len(calls) < 200  # all counted, in fewer calls than callers


def test_a_failed_batch_falls_back_to_memory_for_each_caller():
    import asyncio

    limiter = RateLimiter("redis://127.0.0.1:1/0", enabled=True)  # nothing listens there

    async def main():
        return await asyncio.gather(*(limiter.hit_all_async([("k", "3/60")]) for _ in range(3)),
                                    return_exceptions=True)
    assert asyncio.run(main()) == [None, None, None]  # counted in memory: 3 of 3 allowed
    with pytest.raises(DomainError) as e:
        limiter.hit("k", "3/60")  # the fourth, in memory while Redis is down
    assert e.value.code == "RATE_LIMITED"


def test_a_batch_leaves_without_waiting_for_the_one_before_it():
    """Callers arriving while a batch is at Redis go in the next loop turn's batch, not after its answer."""
    import asyncio

    from guahao.security.ratelimit import _Batches

    async def main():
        released, calls = asyncio.Event(), []

        async def script(keys, args):
            calls.append(list(keys))
            if len(calls) == 1:
                await released.wait()  # the first batch is slow to come back
            return [n for _ in keys for n in (1, 60_000)]
        batches = _Batches(script)
        first = [asyncio.create_task(batches.hit([f"a{i}"], [60_000])) for i in range(3)]
        await asyncio.sleep(0.01)
        second = [asyncio.create_task(batches.hit([f"b{i}"], [60_000])) for i in range(2)]
        done = await asyncio.wait_for(asyncio.gather(*second), 2)  # while the first batch is still out
        assert not any(t.done() for t in first)
        released.set()
        return calls, done, await asyncio.gather(*first)
    calls, second, first = asyncio.run(main())
    assert calls == [["a0", "a1", "a2"], ["b0", "b1"]]
    assert second == [[1, 60_000]] * 2 and first == [[1, 60_000]] * 3


def test_a_refresh_before_the_release_has_the_persons_behind_the_account_read_ahead(db, monkeypatch):
    """The persons behind a refreshing patient's account are read in the background, so that their refused
    attempt at T needs no look-up: the per-person limit is counted with the others, in one Redis call."""
    from datetime import date, timedelta

    from sqlalchemy import text

    from guahao.security import guards

    day = date.today() + timedelta(days=2)
    with db.transaction() as s:
        d = f.department(s, f.hospital(s))
        slot = f.slot_ids(s, f.session(s, f.doctor(s, d), day, capacity=1))[0]
    url = f"/api/v1/slots?department_id={d.id}&date={day}"
    with _client(db) as c:  # real time: the page cache counts freshness on the monotonic clock
        first, refreshing = f.signup(c), f.signup(c)
        with db.reading() as s:
            account, person = s.execute(text("SELECT account_id, person_id FROM patients WHERE id = :p"),
                                        dict(p=refreshing[1])).one()
        assert c.post("/api/v1/appointments", headers=first[0],
                      json=dict(slot_id=slot, patient_id=first[1])).status_code == 201  # now full
        people = c.app.state.person_of
        assert (account, refreshing[1]) not in people
        c.app.state.availability.ttl = 30  # the second refresh finds the page however slow the machine
        assert c.get(url).status_code == 200  # the route renders and caches the page
        assert c.get(url, headers=refreshing[0]).status_code == 200  # the fast lane serves it
        deadline = time.monotonic() + 5
        while (account, refreshing[1]) not in people and time.monotonic() < deadline:
            time.sleep(0.02)
        assert people.get((account, refreshing[1])) == person

        looked_up = []
        monkeypatch.setattr(guards.PersonLookups, "person_of", lambda *a: looked_up.append(a))
        r = c.post("/api/v1/appointments", headers=refreshing[0],
                   json=dict(slot_id=slot, patient_id=refreshing[1]))
        assert r.status_code == 409 and r.json()["error"]["code"] == "SESSION_FULL"
        assert looked_up == []  # the gate's refusal counted the per-person limit without a look-up


def test_the_limiter_connects_to_redis_ahead_of_the_first_attempt():
    """The server's start opens the event loop's Redis connections: the release instant's first attempts
    do not wait for them. Redis away: warming says so and books on as before."""
    import asyncio

    import redis

    from guahao.security.ratelimit import RedisBackend

    url = "redis://127.0.0.1:6379/1"
    try:
        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
    except Exception:
        pytest.skip("Redis not reachable")

    async def warmed():
        backend = RedisBackend(url)
        backend._pipe = None  # redis-py's client, as for rediss:// or unix://
        await backend.warm(connections=5)
        pool = backend._batches().script.registered_client.connection_pool
        ready = [c for c in pool._available_connections if c.is_connected]
        counts = await backend.hit_many_async(["guahao:test:warm:" + str(time.time())], [60.0])
        return len(ready), counts
    ready, counts = asyncio.run(warmed())
    assert ready == 5 and counts[0][0] == 1

    async def warmed_pipe():
        backend = RedisBackend(url)
        await backend.warm()
        connected = backend._pipe.conn is not None
        counts = await backend.hit_many_async(["guahao:test:warm:" + str(time.time())], [60.0])
        return connected, counts
    connected, counts = asyncio.run(warmed_pipe())
    assert connected and counts[0][0] == 1

    async def away():
        limiter = RateLimiter("redis://127.0.0.1:1/0")
        await limiter.warm()  # logs, does not raise
        with pytest.raises(DomainError):
            for _ in range(3):
                await limiter.hit_all_async([("k", "2/60")])
    asyncio.run(away())


def test_counted_without_waiting_still_reaches_redis_and_learns_a_spent_limit():
    """RateLimiter.count_soon (the inline refusals): each count reaches Redis, shared with the waiting path;
    once a reply shows a key over its rate, the next count_soon says so (False) and counts nothing."""
    import asyncio

    with private_redis(port(37)) as r:
        limiter = RateLimiter(r.url)

        async def main():
            limits = [("book-account:7", "3/60")]
            said = [limiter.count_soon(limits) for _ in range(5)]  # in flight together: none known yet
            for _ in range(200):
                await asyncio.sleep(0.005)
                batches = limiter.redis._batches()
                if not batches.waiting and not batches.pipe.waiting:
                    break
            after = limiter.count_soon(limits)
            try:
                await limiter.hit_all_async(limits)
            except Exception as e:
                return said, after, e
            return said, after, None
        said, after, error = asyncio.run(main())
        import redis

        client = redis.Redis.from_url(r.url)
        count = int(client.get(next(iter(client.scan_iter("guahao:rl:book-account:*")))))
    assert said == [True] * 5 and after is False
    assert count == 6  # the five counted without waiting, then the waited one; the refused count_soon: none
    assert error is not None and error.code == "RATE_LIMITED"
