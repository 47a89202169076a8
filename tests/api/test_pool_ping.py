"""The PostgreSQL pool checks a connection only after it has rested, and replaces one that died meanwhile."""

import time

import pytest
from sqlalchemy import text

from guahao.db import make_database
from tests.conftest import PG_URL, REQUIRE_PG, _pg_reachable


@pytest.fixture
def pg():
    why = _pg_reachable()
    if why:
        if REQUIRE_PG:
            pytest.fail(f"PostgreSQL required but unreachable: {why}")
        pytest.skip(why)
    db = make_database(PG_URL, pool_size=1, max_overflow=0)
    yield db
    db.dispose()


def _pid(db) -> int:
    with db.engine.connect() as c:
        return c.execute(text("SELECT pg_backend_pid()")).scalar()


def _kill(pid: int) -> None:
    admin = make_database(PG_URL, pool_size=1, max_overflow=0)
    with admin.engine.connect() as c:
        assert c.execute(text("SELECT pg_terminate_backend(:p)"), dict(p=pid)).scalar()
    admin.dispose()


def test_a_connection_killed_while_it_rested_is_replaced_before_use(pg):
    first = _pid(pg)
    _kill(first)
    time.sleep(1.2)  # rested past the 1 s idle bound: checked on checkout, found dead, replaced
    assert _pid(pg) != first


def test_a_busy_connection_is_not_pinged(pg):
    pings = []
    with pg.engine.connect() as c:
        dbapi = c.connection.dbapi_connection
    original = pg.engine.dialect.do_ping
    pg.engine.dialect.do_ping = lambda conn: pings.append(conn) or original(conn)
    try:
        for _ in range(5):
            _pid(pg)  # back to back: no ping
        assert pings == []
        time.sleep(1.2)
        _pid(pg)
        assert pings == [dbapi]  # after a rest: one ping, on the same (live) connection
    finally:
        pg.engine.dialect.do_ping = original
