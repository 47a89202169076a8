"""Idempotency-Key across server processes: the same attempt sent concurrently to two processes, and
retried after a client timeout, books exactly once and answers the same."""

from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.security.burst import SERVER_NOW, attempt, check_invariants, pg_database, seed
from tests.security.conftest import port
from tests.security.server import base_env, serve, serve_many


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request, tmp_path):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'two.db'}"
        yield url, url
    else:
        with pg_database("guahao-trust-idem") as urls:
            yield urls


def test_same_key_on_two_processes_books_once(database_url):
    url, admin_url = database_url
    w = seed(admin_url, accounts=6, capacity=10)
    env = base_env(url, GUAHAO_NOW=SERVER_NOW)
    with serve_many([port(41), port(42)], env) as (one, two), \
            httpx.Client(base_url=one) as c1, httpx.Client(base_url=two) as c2, ThreadPoolExecutor(8) as pool:
        jobs = []
        for i, (headers, pid) in enumerate(w.accounts):
            slot = w.slots[i]
            for c in (c1, c2, c1, c2):  # four copies of one attempt, two per process, all at once
                jobs.append((i, c, headers, pid, slot))
        answers = list(pool.map(lambda j: (j[0], attempt(j[1], j[2], j[3], j[4], f"key-{j[0]}")), jobs))
    by_account: dict[int, list] = {}
    for i, (status, body) in answers:
        by_account.setdefault(i, []).append((status, body))
    for i, got in by_account.items():
        assert {s for s, _ in got} == {201}, got
        assert len({b["id"] for _, b in got}) == 1, got  # every copy names the same booking
    active = check_invariants(admin_url, w.session_id, w.capacity)
    assert len(active) == len(w.accounts)
    assert Counter(r.account_id for r in active.values()).most_common(1)[0][1] == 1


def test_retry_after_a_client_timeout_never_double_books(database_url):
    url, admin_url = database_url
    w = seed(admin_url, accounts=5, capacity=10)
    env = base_env(url, GUAHAO_NOW=SERVER_NOW)
    with serve(port(43), env) as base, httpx.Client(base_url=base) as c:
        first = [attempt(c, h, pid, w.slots[i], f"retry-{i}", timeout=0.0005)
                 for i, (h, pid) in enumerate(w.accounts)]
        assert any(status == 0 for status, _ in first)  # the client really gave up on some
        retried = [attempt(c, h, pid, w.slots[i], f"retry-{i}") for i, (h, pid) in enumerate(w.accounts)]
        again = [attempt(c, h, pid, w.slots[i], f"retry-{i}") for i, (h, pid) in enumerate(w.accounts)]
    assert [s for s, _ in retried] == [201] * len(w.accounts)
    assert [b["id"] for _, b in retried] == [b["id"] for _, b in again]
    active = check_invariants(admin_url, w.session_id, w.capacity)
    assert sorted(active) == sorted(b["id"] for _, b in retried)
