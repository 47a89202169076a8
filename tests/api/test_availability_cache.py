"""Availability under the refresh storm: ETag / 304, and a booking or cancel visible at once (same process)."""

from datetime import date

import time_machine

from tests import factories as f

NOW = f.local_dt(2026, 12, 1, 10, 0)
D1 = date(2026, 12, 2)


def test_etag_304_and_changes_seen_at_once(client, db):
    with db.transaction() as s:
        h = f.hospital(s)
        d = f.department(s, h)
        cs = f.session(s, f.doctor(s, d), D1, capacity=3)
        slots = f.slot_ids(s, cs)
    url = f"/api/v1/slots?department_id={d.id}&date={D1}"
    with time_machine.travel(NOW, tick=False):
        r = client.get(url)
        assert r.status_code == 200 and r.headers["cache-control"] == "public, no-cache"
        etag = r.headers["etag"]
        again = client.get(url, headers={"If-None-Match": etag})
        assert again.status_code == 304 and again.headers["etag"] == etag and again.content == b""
        headers, pid, _ = f.signup(client)
        b = client.post("/api/v1/appointments", headers=headers, json=dict(slot_id=slots[0], patient_id=pid))
        assert b.status_code == 201
        r = client.get(url, headers={"If-None-Match": etag})
        assert r.status_code == 200 and r.headers["etag"] != etag
        assert r.json()["sessions"][0]["remaining"] == 2
        assert client.post(f"/api/v1/appointments/{b.json()['id']}/cancel", headers=headers).status_code == 200
        assert client.get(url).json()["sessions"][0]["remaining"] == 3


def test_full_session_refused_without_the_database_then_freed_by_cancel(client, db):
    """The gate remembers SESSION_FULL; a cancel clears it after its commit, so the place is bookable."""
    with db.transaction() as s:
        h = f.hospital(s)
        d = f.department(s, h)
        cs = f.session(s, f.doctor(s, d), D1, capacity=1)
        slot = f.slot_ids(s, cs)[0]
    with time_machine.travel(NOW, tick=False):
        users = [f.signup(client) for _ in range(3)]
        first = client.post("/api/v1/appointments", headers=users[0][0], json=dict(slot_id=slot, patient_id=users[0][1]))
        assert first.status_code == 201
        r = client.post("/api/v1/appointments", headers=users[1][0], json=dict(slot_id=slot, patient_id=users[1][1]))
        assert r.json()["error"]["code"] == "SESSION_FULL"
        gate = client.app.state.gate
        assert gate.refusal(slot, NOW).code == "SESSION_FULL"  # learned: the next loser costs no transaction
        body = dict(slot_id=slot, patient_id=users[2][1])
        r = client.post("/api/v1/appointments", headers=users[2][0], json=body)
        assert r.status_code == 409 and r.json()["error"]["code"] == "SESSION_FULL"
        # Anything the fast lane is not sure of goes to the route, which answers in full.
        assert client.post("/api/v1/appointments", json=body).json()["error"]["code"] == "UNAUTHORIZED"
        r = client.post("/api/v1/appointments", headers=users[2][0], json={**body, "extra": 1})
        assert r.status_code == 422
        r = client.post("/api/v1/appointments", headers=users[2][0], json={**body, "patient_id": "x"})
        assert r.status_code == 422
        assert client.post(f"/api/v1/appointments/{first.json()['id']}/cancel", headers=users[0][0]).status_code == 200
        assert gate.refusal(slot, NOW) is None
        r = client.post("/api/v1/appointments", headers=users[2][0], json=dict(slot_id=slot, patient_id=users[2][1]))
        assert r.status_code == 201


def test_a_refresh_before_the_release_gets_the_patients_token_checked_ahead(client, db):
    """Each process verifies a token's signature once; a logged-in patient's refresh (served from the page
    cache) does it before T, so the booking at T finds it done. A bad token changes nothing for the read."""
    from guahao.accounts.security import _verified_claims

    with db.transaction() as s:
        d = f.department(s, f.hospital(s))
        f.session(s, f.doctor(s, d), D1, capacity=3)
    url = f"/api/v1/slots?department_id={d.id}&date={D1}"
    # Real time, not time_machine: the page cache counts freshness on the monotonic clock.
    headers, _, _ = f.signup(client)
    token = headers["Authorization"][7:]
    client.app.state.availability.ttl = 30  # each second refresh finds the page however slow the machine

    def refresh(auth_headers):
        assert client.get(url).status_code == 200  # the route renders and caches the page (fresh 0.5 s)
        assert client.get(url, headers=auth_headers).status_code == 200  # the fast lane serves it
    _verified_claims.cache_clear()
    refresh(headers)
    assert _verified_claims.cache_info().currsize == 1
    assert _verified_claims.cache_info().misses == 1  # verified here, once
    refresh(headers)
    assert _verified_claims.cache_info().hits == 1
    refresh({"Authorization": "Bearer " + token[:-4] + "AAAA"})
    assert _verified_claims.cache_info().currsize == 1


def test_refreshes_that_miss_the_cache_together_take_one_thread_and_one_rendering(app, db, monkeypatch):
    """The page has expired and 40 refreshes arrive while it is rendered again: one of them renders (in a
    worker thread), the others wait for it on the event loop, and all get the same page."""
    import asyncio
    import threading

    import httpx

    from guahao.schedule import api as schedule_api

    with db.transaction() as s:
        d = f.department(s, f.hospital(s))
        f.session(s, f.doctor(s, d), D1, capacity=3)
    cache, renders, cache_calls = app.state.availability, [], []
    original_get, original_render = cache.get, schedule_api.availability

    def counted_get(*args):
        cache_calls.append(threading.get_ident())
        return original_get(*args)

    def slow_render(*args):
        renders.append(1)
        threading.Event().wait(0.2)  # a rendering under load: refreshes keep arriving meanwhile
        return original_render(*args)
    monkeypatch.setattr(cache, "get", counted_get)
    monkeypatch.setattr(schedule_api, "availability", slow_render)

    def storm(waiters):
        async def run():
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
                url = f"/api/v1/slots?department_id={d.id}&date={D1}"
                first = asyncio.create_task(c.get(url))
                await asyncio.sleep(0.05)  # the first refresh is rendering the page
                rest = [asyncio.create_task(c.get(url)) for _ in range(waiters)]
                return await asyncio.gather(first, *rest)
        with time_machine.travel(NOW, tick=True):
            return asyncio.run(run())
    # Freshness is not what this part checks: a generous bound keeps a slow machine (CI rendered in > 0.5 s
    # once, and the waiters rightly rendered again) from turning it into a timing test.
    cache.ttl = 30
    answers = storm(39)
    assert [r.status_code for r in answers] == [200] * 40
    assert len({r.headers["etag"] for r in answers}) == 1
    assert len(renders) == 1 and len(cache_calls) == 1

    # A rendering slower than the freshness bound: its page is too old for those who waited, who get a
    # page rendered again rather than counts older than the bound.
    cache.clear()
    renders.clear()
    cache.ttl = 0.1
    answers = storm(2)
    assert [r.status_code for r in answers] == [200] * 3
    assert len(renders) >= 2
