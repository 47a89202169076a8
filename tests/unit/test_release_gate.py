"""The release gate's memory (no database, no Redis): it only repeats refusals, and forgets them in time."""

import time
from datetime import datetime, timedelta, timezone

from guahao.errors import DomainError
from guahao.release.availability import AvailabilityCache, etag_matches
from guahao.release.gate import Gate

NOW = datetime(2026, 12, 1, 0, 0, tzinfo=timezone.utc)


def gate(**kw) -> Gate:
    g = Gate(None, **kw)
    g.remember_slots([(1, 10), (2, 10), (3, 20)])
    return g


def test_unknown_slot_or_nothing_learned_goes_to_the_database():
    g = gate()
    assert g.refusal(99, NOW) is None
    assert g.refusal(1, NOW) is None


def test_full_session_refuses_every_number_of_it_only():
    g = gate()
    g.learn(None, 1, DomainError("SESSION_FULL"), g.generation)
    assert g.refusal(2, NOW).code == "SESSION_FULL"
    assert g.refusal(3, NOW) is None


def test_taken_number_refuses_that_number_only():
    g = gate()
    g.learn(None, 1, DomainError("SLOT_TAKEN"), g.generation)
    assert g.refusal(1, NOW).code == "SLOT_TAKEN"
    assert g.refusal(2, NOW) is None


def test_not_released_until_the_instant_only():
    g = gate()
    release = NOW + timedelta(seconds=30)
    g.learn(None, 3, DomainError("NOT_RELEASED", release_at=release.isoformat()), g.generation)
    e = g.refusal(3, NOW)
    assert e.code == "NOT_RELEASED" and e.details["release_at"] == release.isoformat()
    assert g.refusal(3, release) is None  # at T the database decides


def test_other_answers_are_not_remembered():
    g = gate()
    for code in ("DUPLICATE_DEPARTMENT_DAY", "NOT_FOUND", "BLACKLISTED", "DAILY_LIMIT"):
        g.learn(None, 1, DomainError(code), g.generation)
    assert g.refusal(1, NOW) is None


def test_flags_expire_after_the_ttl():
    g = gate(ttl_alone=0.05)
    g.learn(None, 1, DomainError("SESSION_FULL"), g.generation)
    assert g.refusal(1, NOW) is not None
    time.sleep(0.08)
    assert g.refusal(1, NOW) is None


def test_a_freed_place_clears_the_session_at_once():
    g = gate()
    g.learn(None, 1, DomainError("SESSION_FULL"), g.generation)
    g.learn(None, 2, DomainError("SLOT_TAKEN"), g.generation)
    g.learn(None, 3, DomainError("SLOT_TAKEN"), g.generation)
    g.freed(10)
    assert g.refusal(1, NOW) is None and g.refusal(2, NOW) is None
    assert g.refusal(3, NOW).code == "SLOT_TAKEN"  # another session: untouched


def test_a_refusal_read_before_a_cancel_is_not_kept():
    g = gate()
    before = g.generation  # the database read starts …
    g.freed(10)  # … a cancel commits meanwhile …
    g.learn(None, 1, DomainError("SESSION_FULL"), before)  # … the stale "full" must not stick
    assert g.refusal(1, NOW) is None


def test_availability_page_is_rendered_once_then_served_and_dropped_on_change():
    cache = AvailabilityCache(ttl=5)
    calls = []

    def render():
        calls.append(1)
        return b'{"x": %d}' % len(calls), frozenset({10})
    a = cache.get("k", NOW, render)
    b = cache.get("k", NOW, render)
    assert a is b and len(calls) == 1 and etag_matches(a.etag, a.etag)
    cache.invalidate(20)
    assert cache.get("k", NOW, render) is a
    cache.invalidate(10)
    c = cache.get("k", NOW, render)
    assert len(calls) == 2 and c.etag != a.etag
    # A request clock more than ttl away (tests travelling in time) never gets an old page.
    assert cache.peek("k", NOW + timedelta(seconds=6)) is None


def test_availability_page_never_older_than_ttl():
    cache = AvailabilityCache(ttl=0.05)
    calls = []
    cache.get("k", NOW, lambda: (calls.append(1) or b"{}", frozenset()))
    time.sleep(0.08)
    cache.get("k", NOW, lambda: (calls.append(1) or b"{}", frozenset()))
    assert len(calls) == 2


def test_a_committed_booking_marks_its_number_and_the_last_one_the_session():
    g = gate()
    g.booked(1, 10, 1, g.generation)
    assert g.refusal(1, NOW).code == "SLOT_TAKEN" and g.refusal(2, NOW) is None
    g.booked(2, 10, 0, g.generation)
    assert g.refusal(1, NOW).code == "SESSION_FULL" and g.refusal(2, NOW).code == "SESSION_FULL"
    stale = g.generation
    g.freed(10)
    g.booked(1, 10, 0, stale)  # a success read before the cancel is not kept as "full"
    assert g.refusal(2, NOW) is None
