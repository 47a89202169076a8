"""A small release burst through the real HTTP server (the benchmark's scenario, untimed): refresh storm,
skewed rush with retries, then every correctness figure checked against the database. With Redis for the
release gate, and with Redis down (booking must stay correct, only slower)."""

import asyncio
import json
import time
from datetime import datetime, timedelta, timezone

import pytest

from bench import burstgen
from bench import scenario as burst
from bench.loadclient import Client
from guahao.clock import local

REDIS = "redis://127.0.0.1:6379/1"
NOBODY_LISTENS = "redis://127.0.0.1:8399/1"  # in this suite's port range, never bound: Redis is "down"


def _redis_up() -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(REDIS, socket_connect_timeout=1).ping())
    except Exception:
        return False


def _run(db, url, patients=200, sessions=2, per_session=10, storm=1.5, compiled=False):
    now = datetime.now(timezone.utc)
    sc = burst.Scenario(patients=patients, sessions=sessions, per_session=per_session, storm_seconds=storm,
                        connections=64, tries=5)
    world = burst.seed(db, sc, local(now).date() + timedelta(days=3), now + timedelta(days=1), now)
    tokens = asyncio.run(burst.login_all(url, world))
    t_release = time.time() + storm + 0.5
    burst.set_release(db, world, datetime.fromtimestamp(t_release, timezone.utc))
    if compiled:
        recs = burstgen.start(url, world, tokens, sc, t_release).wait()
    else:
        recs, _ = asyncio.run(burst.run_burst(url, world, tokens, sc, t_release))
    return sc, world, recs, burst.analyze(recs, sc, world), burst.verify(db, world, recs, sc), tokens


def _assert_correct(sc, analysis, verification):
    assert verification["bookings"] == sc.numbers == analysis["successful_bookings"], verification
    assert verification["slots_held_twice"] == 0
    assert verification["sessions_over_capacity"] == 0
    assert verification["session_counter_mismatches"] == 0
    assert verification["limit_breaches"] == {}
    assert verification["false_success_answers"] == 0
    assert verification["bookings_without_success_answer"] == 0
    assert verification["ok"]
    assert analysis["http_5xx"] == 0 and analysis["timeouts"] == 0 and analysis["connection_errors"] == 0
    codes = set(analysis["answer_codes"])
    assert codes <= {"booked", "SLOT_TAKEN", "SLOT_BUSY", "SESSION_FULL"}, analysis["answer_codes"]
    # Losers were answered without a transaction: by the gate once their session was full, or at once while
    # their number was at the database. (On SQLite's one writer a booking stays there long enough for the
    # patients to spend all their tries on SLOT_BUSY before the sessions fill: no SESSION_FULL then.)
    answered = analysis["answer_codes"]
    assert answered.get("SESSION_FULL", 0) + answered.get("SLOT_BUSY", 0) > 0, answered


def _assert_timed(recs, analysis):
    """Each answer is timed from its write to its arrival, which the patient's coroutine sees no earlier."""
    assert all(r.t0 <= r.t1 <= r.seen for r in recs)
    lat = analysis["latency_ms"]
    assert lat["book"]["n"] == lat["book_as_seen_by_patients"]["n"] == sum(r.kind == "book" for r in recs)
    assert lat["book"]["p50"] <= lat["book_as_seen_by_patients"]["p50"]
    slow = analysis["slow_attempts"]
    assert slow["over_100ms"] == sum(r.kind == "book" and r.t1 - r.t0 > 0.1 for r in recs)
    assert 0 <= slow["sent_before_sold_out"] <= slow["over_100ms"]
    first_answer = min(r.t1 for r in recs if r.kind == "book")
    wave = [r for r in recs if r.kind == "book" and r.t0 < first_answer]
    assert sum(slow["first_wave_answers"].values()) == slow["first_wave"] == len(wave) > 0
    assert slow["first_wave_answers"].get("booked", 0) == sum(r.code == "booked" for r in wave)
    assert slow["first_wave_last_answer_ms"] == round(1000 * max(r.t1 - r.t0 for r in wave), 1)


def _assert_patients_follow_the_script(recs, sc, patients):
    """Patients refreshed before T (a refresh still queued for a connection at T is dropped, so on a slow
    machine not every one); after T: 预约, and after each lost try a re-read and the next try, at most
    `tries`, then one last look at the page."""
    before = {r.patient for r in recs if r.kind == "read" and r.t0 < 0}
    assert patients // 2 <= len(before) <= patients, len(before)
    after: dict = {}
    for r in sorted((r for r in recs if r.t0 >= 0), key=lambda r: r.t0):
        after.setdefault(r.patient, []).append(r)
    assert len(after) == patients
    for steps in after.values():
        kinds = [r.kind for r in steps]
        assert kinds[0::2] == ["book"] * len(kinds[0::2]) and set(kinds[1::2]) <= {"read"}, kinds
        books = steps[0::2]
        assert len(books) <= sc.tries
        assert all(b.code in burst.LOSING for b in books[:-1]), [b.code for b in books]
        if books[-1].code == "booked":
            assert steps[-1] is books[-1]
        else:
            assert len(books) == sc.tries and kinds[-1] == "read"


def test_small_burst_with_redis_gate(db, live_server_factory):
    if not _redis_up():
        pytest.skip("Redis not reachable at 127.0.0.1:6379")
    srv = live_server_factory(redis_url=REDIS)
    sc, world, recs, analysis, verification, _ = _run(db, srv.url)
    _assert_correct(sc, analysis, verification)
    _assert_timed(recs, analysis)
    _assert_patients_follow_the_script(recs, sc, 200)
    assert srv.app.state.gate.subscribed


def test_small_burst_through_the_compiled_load_generator(db, live_server_factory):
    """bench/burstgen.c, the benchmark's default generator: the same patients, the same answers checked."""
    if not _redis_up():
        pytest.skip("Redis not reachable at 127.0.0.1:6379")
    try:
        burstgen.build()
    except burstgen.Unavailable as e:
        pytest.skip(str(e))
    srv = live_server_factory(redis_url=REDIS)
    sc, world, recs, analysis, verification, tokens = _run(db, srv.url, compiled=True)
    _assert_correct(sc, analysis, verification)
    _assert_timed(recs, analysis)
    _assert_patients_follow_the_script(recs, sc, 200)
    assert analysis["latency_ms"]["read_storm"]["n"] >= 200  # the storm: each patient at least once

    # Its hammer (the ceilings): sold-out attempts back to back, answered by their error codes.
    builder = Client.for_url(srv.url, 1)
    slots = [sl for sls in world.slots.values() for sl in sls]
    raws = [builder.build("POST", "/api/v1/appointments", {"Authorization": f"Bearer {tokens[i]}"}, json.dumps(
        dict(slot_id=slots[i % len(slots)], patient_id=world.patients[i][1])).encode()) for i in range(40)]
    sold_out = burstgen.hammer(srv.url, raws, 0.5, 8)
    assert sold_out["requests"] > 40 and sold_out["rate"] > 0  # it went round the list again
    assert set(sold_out["codes"]) <= {"SESSION_FULL", "SLOT_TAKEN", "SLOT_BUSY", "429"}, sold_out["codes"]
    assert sold_out["codes"].get("SESSION_FULL", 0) > 0
    assert sold_out["latency_ms"]["n"] == sold_out["requests"]
    once = burstgen.hammer(srv.url, [builder.build("GET", "/healthz")] * 3, 5.0, 8, cycle=False)
    assert once["requests"] == 3 and once["codes"] == {"200": 3} and once["seconds"] < 5.0


def test_small_burst_with_redis_down(db, live_server_factory):
    srv = live_server_factory(redis_url=NOBODY_LISTENS)
    sc, world, recs, analysis, verification, _ = _run(db, srv.url, patients=120)
    _assert_correct(sc, analysis, verification)
    assert not srv.app.state.gate.subscribed
