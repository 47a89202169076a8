"""Shared pieces for multi-process and fault tests: a private database, a seeded hospital, many accounts
with tokens, concurrent booking attempts, and the invariants checked afterwards."""

import os
import secrets
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date

import httpx
import pytest
from sqlalchemy import text

from tests import factories as f
from tests.conftest import PG_URL, _pg_reachable

SERVER_NOW = "2026-12-01T10:00:00+08:00"
NOW = f.local_dt(2026, 12, 1, 10, 0)
VISIT = date(2026, 12, 2)


@contextmanager
def pg_database(app_name: str, host: str = "127.0.0.1", port: int = 5432):
    """A private schema; yields the URL a server process should use (search_path + application_name)."""
    why = _pg_reachable()
    if why:
        if os.environ.get("GUAHAO_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"PostgreSQL required but unreachable: {why}")
        pytest.skip(f"PostgreSQL not reachable: {why}")
    from guahao.db import make_database

    schema = f"guahao_trust_{os.getpid()}_{secrets.token_hex(3)}"
    admin = make_database(PG_URL)
    with admin.engine.begin() as c:
        c.execute(text(f'CREATE SCHEMA "{schema}"'))
    base = PG_URL.replace("127.0.0.1:5432", f"{host}:{port}")
    url = f"{base}?options=-csearch_path%3D{schema}&application_name={app_name}"
    try:
        yield url, f"{PG_URL}?options=-csearch_path%3D{schema}"
    finally:
        with admin.engine.begin() as c:
            c.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@dataclass
class World:
    session_id: int
    capacity: int
    slots: list[int]
    accounts: list[tuple[dict, int]] = field(default_factory=list)  # (auth headers, patient id)


def seed(url: str, accounts: int, capacity: int) -> World:
    """A hospital with one session of `capacity` slots on VISIT, and `accounts` accounts with tokens."""
    from guahao.accounts.models import Patient
    from guahao.accounts.security import issue_token
    from guahao.accounts.service import register
    from guahao.db import make_database
    from guahao.migrate import upgrade

    db = make_database(url)
    try:
        upgrade(db.engine)
        with db.transaction() as s:
            h = f.hospital(s)
            cs = f.session(s, f.doctor(s, f.department(s, h)), VISIT, "AM", capacity=capacity)
            w = World(cs.id, capacity, f.slot_ids(s, cs))
            for i in range(accounts):
                acc = register(s, NOW, f.phone(), "secret123", "张三", f.id_number(n=i % 1000,
                               birth=date(1960 + i // 1000, 1, 1 + i % 28)))
                pid = s.query(Patient.id).filter(Patient.account_id == acc.id).scalar()
                tok = issue_token(str(acc.id), "account", NOW)
                w.accounts.append(({"Authorization": f"Bearer {tok}"}, pid))
        return w
    finally:
        db.dispose()


def attempt(client: httpx.Client, headers: dict, patient_id: int, slot_id: int, key: str,
            timeout: float = 15.0) -> tuple[int, dict | None]:
    """One booking attempt; a transport failure (killed connection, timeout) is status 0."""
    try:
        r = client.post("/api/v1/appointments", headers={**headers, "Idempotency-Key": key}, timeout=timeout,
                        json=dict(slot_id=slot_id, patient_id=patient_id, insurance_type="self_pay"))
    except httpx.HTTPError:
        return 0, None
    try:
        body = r.json()
    except ValueError:
        body = {"raw": r.text[:200]}
    return r.status_code, body


def burst(base: str, jobs: list[tuple[dict, int, int, str]], threads: int = 16) -> list[tuple[int, dict]]:
    with httpx.Client(base_url=base, limits=httpx.Limits(max_connections=threads * 2)) as c, \
            ThreadPoolExecutor(threads) as pool:
        return list(pool.map(lambda j: attempt(c, *j), jobs))


def check_invariants(url: str, session_id: int, capacity: int) -> dict:
    """Capacity never exceeded, the counter equals the active bookings, no slot or person doubled."""
    from guahao.db import make_database

    db = make_database(url)
    try:
        with db.engine.connect() as c:
            active = c.execute(text("SELECT id, slot_id, account_id, person_id FROM bookings WHERE session_id = :s "
                                    "AND status IN ('booked', 'checked_in', 'completed')"),
                               dict(s=session_id)).all()
            booked = c.scalar(text("SELECT booked FROM clinic_sessions WHERE id = :s"), dict(s=session_id))
        assert len(active) <= capacity
        assert booked == len(active), (booked, len(active))
        assert len({r.slot_id for r in active}) == len(active)
        assert len({r.person_id for r in active}) == len(active)
        return {r.id: r for r in active}
    finally:
        db.dispose()
