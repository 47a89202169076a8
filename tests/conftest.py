"""Test fixtures: every integration test runs on SQLite and on PostgreSQL, built by the real migrations.

PostgreSQL: GUAHAO_TEST_POSTGRES_URL (default postgresql+psycopg://postgres@127.0.0.1:5432/test). Each run
creates its own schema and drops it at the end. Without a reachable server the PostgreSQL cases skip,
unless GUAHAO_REQUIRE_POSTGRES=1 (set by .ci/run), which turns the skip into a failure.
"""

import os

os.environ.setdefault("GUAHAO_ENVIRONMENT", "test")
os.environ.setdefault("GUAHAO_ARGON2_TIME_COST", "1")
os.environ.setdefault("GUAHAO_ARGON2_MEMORY_KIB", "1024")
# Rate limits off for ordinary tests (fixtures sign up and log in hundreds of accounts from one address);
# tests/security builds apps with limits on and attacks them.
os.environ.setdefault("GUAHAO_RATE_LIMIT_ENABLED", "false")
os.environ.pop("GUAHAO_NOW", None)

import secrets  # noqa: E402

import pytest  # noqa: E402
from sqlalchemy import text  # noqa: E402

from guahao.db import Base, make_database  # noqa: E402
from guahao.migrate import upgrade  # noqa: E402

# FastAPI keeps up to 4,096 dependency callables in lru_caches (fastapi.dependencies.models), and each
# keeps its app alive: ~20 apps of ~150,000 objects each, since every test builds its own app. The heap
# grew to 3.4 million objects by the end of tests/security, every full collection took ~3 s, and pytest
# runs five at the end (about a minute and a half of CI after the summary). Cleared after each test, an
# app goes with its test. Private names: if a FastAPI release renames them, this does nothing.
_FASTAPI_CACHES = ("_is_gen_callable_cached", "_is_async_gen_callable_cached", "_is_coroutine_callable_cached")


@pytest.fixture(autouse=True)
def _forget_fastapi_apps():
    yield
    from fastapi.dependencies import models

    for name in _FASTAPI_CACHES:
        cached = getattr(models, name, None)
        if hasattr(cached, "cache_clear"):
            cached.cache_clear()


PG_URL = os.environ.get("GUAHAO_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REQUIRE_PG = os.environ.get("GUAHAO_REQUIRE_POSTGRES") == "1"


def _pg_reachable() -> str | None:
    import psycopg

    try:
        with psycopg.connect(PG_URL.replace("+psycopg", ""), connect_timeout=3):
            return None
    except Exception as e:  # any failure to connect means "no PostgreSQL here"
        return str(e).splitlines()[0] if str(e) else type(e).__name__


@pytest.fixture(scope="session")
def _databases(tmp_path_factory):
    made = {}
    yield made
    for name, (db, cleanup) in made.items():
        db.dispose()
        cleanup()


def _open(kind: str, made: dict, tmp_path_factory):
    if kind in made:
        return made[kind][0]
    if kind == "sqlite":
        path = tmp_path_factory.mktemp("db") / "test.db"
        db = make_database(f"sqlite:///{path}")
        upgrade(db.engine)
        made[kind] = (db, lambda: None)
        return db
    why = _pg_reachable()
    if why:
        if REQUIRE_PG:
            pytest.fail(f"PostgreSQL required (GUAHAO_REQUIRE_POSTGRES=1) but unreachable: {why}")
        pytest.skip(f"PostgreSQL not reachable: {why}")
    schema = f"guahao_test_{os.getpid()}_{secrets.token_hex(3)}"
    admin = make_database(PG_URL)
    with admin.engine.begin() as c:
        c.execute(text(f'CREATE SCHEMA "{schema}"'))
    db = make_database(PG_URL, pool_size=8, max_overflow=8, options=f"-c search_path={schema}")
    upgrade(db.engine)

    def cleanup():
        with admin.engine.begin() as c:
            c.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()

    made[kind] = (db, cleanup)
    return db


def _wipe(db) -> None:
    tables = [t.name for t in reversed(Base.metadata.sorted_tables)]
    with db.engine.begin() as c:
        if db.dialect == "postgresql":
            # Bypass the append-only triggers on audit_log (migration 0006) for the wipe only.
            c.execute(text("SET LOCAL session_replication_role = replica"))
            c.execute(text("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " RESTART IDENTITY CASCADE"))
        else:
            # SQLite cannot disable triggers: drop the append-only ones, wipe, and put them back.
            triggers = c.execute(text("SELECT name, sql FROM sqlite_master WHERE type = 'trigger' "
                                      "AND tbl_name = 'audit_log'")).all()
            for name, _ in triggers:
                c.execute(text(f'DROP TRIGGER "{name}"'))
            for t in tables:
                c.execute(text(f'DELETE FROM "{t}"'))
            for _, sql in triggers:
                c.execute(text(sql))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db(request, _databases, tmp_path_factory):
    database = _open(request.param, _databases, tmp_path_factory)
    _wipe(database)
    return database


@pytest.fixture(params=["sqlite"])
def sqlite_db(request, _databases, tmp_path_factory):
    database = _open(request.param, _databases, tmp_path_factory)
    _wipe(database)
    return database


@pytest.fixture(params=[pytest.param("postgres", marks=pytest.mark.postgres)])
def postgres_db(request, _databases, tmp_path_factory):
    """For tests of PostgreSQL's own paths (skips without a server, unless GUAHAO_REQUIRE_POSTGRES=1)."""
    database = _open(request.param, _databases, tmp_path_factory)
    _wipe(database)
    return database


@pytest.fixture
def app(db):
    from guahao.app import create_app
    from guahao.clock import SystemClock

    return create_app(db=db, clock=SystemClock())


@pytest.fixture
def client(app):
    from fastapi.testclient import TestClient

    with TestClient(app, raise_server_exceptions=False) as c:
        yield c
