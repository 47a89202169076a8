"""Two server processes' gates over Redis pub/sub: a cancel in one clears the other's refusals."""

import time
import uuid
from datetime import datetime, timezone

import pytest

from guahao.errors import DomainError
from guahao.release.gate import Gate

REDIS = "redis://127.0.0.1:6379/1"
NOW = datetime(2026, 12, 1, tzinfo=timezone.utc)


def _wait(cond, seconds=5.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.01)
    return False


@pytest.fixture
def two_gates():
    import redis

    try:
        redis.Redis.from_url(REDIS, socket_connect_timeout=1).ping()
    except Exception:
        pytest.skip("Redis not reachable")
    prefix = f"guahao:test:{uuid.uuid4().hex}:"
    gates = [Gate(REDIS, prefix), Gate(REDIS, prefix)]
    for g in gates:
        g.remember_slots([(1, 10), (2, 10)])
        g.start()
    assert _wait(lambda: all(g.subscribed for g in gates))
    yield gates
    for g in gates:
        g.stop()


def test_cancel_in_one_worker_clears_full_flag_in_the_other(two_gates):
    a, b = two_gates
    a.learn(None, 1, DomainError("SESSION_FULL"), a.generation)
    assert a.refusal(2, NOW).code == "SESSION_FULL"
    assert a.ttl == a.ttl_connected
    b.freed(10)
    assert _wait(lambda: a.refusal(2, NOW) is None, 2.0)


def test_booking_in_one_worker_drops_the_others_availability_pages(two_gates):
    a, b = two_gates
    seen = []
    a.on_change(seen.append)
    b._publish("b:10:2:5")
    assert _wait(lambda: seen == [10], 2.0)


def test_a_booking_in_one_worker_is_refused_by_the_other_at_once(two_gates):
    a, b = two_gates
    b.booked(1, 10, 1, b.generation)  # number 1 taken, one place left
    assert _wait(lambda: a.refusal(1, NOW) is not None, 2.0)
    assert a.refusal(1, NOW).code == "SLOT_TAKEN" and a.refusal(2, NOW) is None
    b.booked(2, 10, 0, b.generation)  # the last place
    assert _wait(lambda: a.refusal(2, NOW) is not None, 2.0)
    assert a.refusal(1, NOW).code == "SESSION_FULL"


def test_a_booking_on_the_event_loop_is_told_to_the_others_without_waiting_for_redis(two_gates):
    import asyncio

    a, b = two_gates

    async def book_on_loop():
        b.booked(1, 10, 0, b.generation, publish=False)  # what the booking's process learns at once
        b.publish_booked_soon(1, 10, 0)
        queued = len(b._publishing)  # still at Redis: the caller went on without it
        await asyncio.gather(*b._publishing)
        return queued
    assert asyncio.run(book_on_loop()) == 1
    assert b.refusal(2, NOW).code == "SESSION_FULL"
    assert _wait(lambda: a.refusal(2, NOW) is not None, 2.0)
    assert a.refusal(2, NOW).code == "SESSION_FULL" and not b._publishing


def test_a_worker_subscribes_when_it_starts_not_at_its_first_booking_attempt(db):
    """Subscribing at T made each worker forget what it had learned in its first milliseconds and miss the
    other workers' news until its subscription came up."""
    import redis
    from fastapi.testclient import TestClient

    from guahao.app import create_app
    from guahao.clock import SystemClock
    from guahao.config import Settings

    try:
        redis.Redis.from_url(REDIS, socket_connect_timeout=1).ping()
    except Exception:
        pytest.skip("Redis not reachable")
    app = create_app(Settings(redis_url=REDIS, redis_prefix=f"guahao:test:{uuid.uuid4().hex}:"), db=db,
                     clock=SystemClock())
    gate = app.state.gate
    with TestClient(app) as client:
        assert client.get("/healthz").status_code == 200
        assert _wait(lambda: gate.subscribed)
        listener = gate._thread
    assert gate._thread is None
    listener.join(5)
    assert not listener.is_alive() and not gate.subscribed


def test_bookings_told_in_one_turn_go_out_as_one_publication_and_each_is_heard(two_gates):
    """A task per booking made redis-py open a connection for each publication that overlapped another."""
    import asyncio

    import redis

    a, b = two_gates
    b.remember_slots([(3, 11)])
    a.remember_slots([(3, 11)])
    listener = redis.Redis.from_url(REDIS).pubsub(ignore_subscribe_messages=True)
    listener.subscribe(b.channel)
    assert listener.get_message(timeout=1.0) is None  # the subscription is up

    async def three_bookings():
        for slot, session, left in ((1, 10, 1), (2, 10, 0), (3, 11, 5)):
            b.booked(slot, session, left, b.generation, publish=False)
            b.publish_booked_soon(slot, session, left)
        senders = len(b._publishing)
        await asyncio.gather(*b._publishing)
        return senders
    assert asyncio.run(three_bookings()) == 1
    published = [listener.get_message(timeout=1.0) for _ in range(2)]
    listener.close()
    assert published[0] is not None and published[1] is None
    assert _wait(lambda: a.refusal(3, NOW) is not None, 2.0)
    assert [a.refusal(s, NOW).code for s in (1, 2, 3)] == ["SESSION_FULL", "SESSION_FULL", "SLOT_TAKEN"]


def test_a_gate_says_when_it_has_taken_in_another_process_news_and_not_its_own(two_gates):
    """release/turns.py then lets the waiters it now refuses leave at once."""
    a, b = two_gates
    heard_a, heard_b = [], []
    a.on_heard = lambda: heard_a.append(a.refusal(1, NOW).code)
    b.on_heard = lambda: heard_b.append(True)
    b.booked(1, 10, 4, b.generation)
    assert _wait(lambda: heard_a == ["SLOT_TAKEN"], 2.0)
    time.sleep(0.1)
    assert heard_b == []
