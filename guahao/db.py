"""Engine, sessions and the declarative base. Services never commit: the caller owns the transaction."""

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
import time
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import MetaData, create_engine, event, exc
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import DateTime, TypeDecorator

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def stored_utc(value: datetime | None) -> datetime | None:
    """An aware instant as a UTCDateTime column stores it (naive UTC); for SQL written by hand too."""
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError("naive datetime given to a UTCDateTime column")
    return value.astimezone(timezone.utc).replace(tzinfo=None)


def read_utc(value: datetime | None) -> datetime | None:
    """A stored UTCDateTime value as the aware instant it stands for."""
    return None if value is None else value.replace(tzinfo=timezone.utc)


class UTCDateTime(TypeDecorator):
    """Stores naive UTC (SQLite has no time zones), always returns aware UTC."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect):
        return stored_utc(value)

    def process_result_value(self, value: datetime | None, dialect):
        return read_utc(value)


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def _sqlite_engine(url: str, immediate: bool) -> Engine:
    path = url.split("///", 1)[-1]
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _):
        # Let SQLAlchemy's begin event issue BEGIN itself (pysqlite's own is deferred and late).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        # Writers take the write lock up front: a deferred transaction that upgrades later
        # fails with SQLITE_BUSY immediately, which busy_timeout cannot wait out.
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def _ping_when_idle(engine: Engine, idle: float = 1.0) -> None:
    """Check a pooled connection before use only when it has lain idle for `idle` seconds.

    SQLAlchemy's pool_pre_ping costs a round trip on every checkout — one more per booking transaction at
    the release instant, when connections never rest. A connection that has just served a transaction is
    alive; one that rested may have been cut (database restart, proxy timeout) and is checked and replaced.
    A connection that dies in use still fails its request (503) and is discarded by the pool."""

    @event.listens_for(engine, "checkin")
    def _returned(dbapi_conn, record):
        record.info["returned_at"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _check(dbapi_conn, record, proxy):
        returned = record.info.get("returned_at")
        if returned is None or time.monotonic() - returned < idle:
            return
        try:
            engine.dialect.do_ping(dbapi_conn)
        except Exception as e:  # the pool discards this connection and tries another
            raise exc.DisconnectionError(str(e)) from e


@dataclass
class Database:
    url: str
    engine: Engine
    read_engine: Engine
    sessions: sessionmaker
    read_sessions: sessionmaker
    # PostgreSQL: what a second, asynchronous pool needs to reach the same database (booking.pg_async).
    pg_connect_args: dict | None = None

    @property
    def pg_conninfo(self) -> str | None:
        if self.dialect != "postgresql":
            return None
        return self.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A unit of work: commits on success, rolls back on error."""
        with self.sessions() as s:
            with s.begin():
                yield s

    @contextmanager
    def reading(self) -> Iterator[Session]:
        with self.read_sessions() as s:
            with s.begin():
                yield s

    def dispose(self) -> None:
        self.engine.dispose()
        if self.read_engine is not self.engine:
            self.read_engine.dispose()


def make_database(url: str, pool_size: int = 4, max_overflow: int = 4, **pg_connect_args) -> Database:
    if is_sqlite(url):
        engine = _sqlite_engine(url, immediate=True)
        read_engine = _sqlite_engine(url, immediate=False)
    else:
        if url.startswith("postgresql://"):
            url = "postgresql+psycopg://" + url[len("postgresql://"):]
        engine = create_engine(
            url,
            pool_size=pool_size,
            max_overflow=max_overflow,
            pool_timeout=10,
            connect_args=pg_connect_args,
        )
        _ping_when_idle(engine)
        read_engine = engine
    return Database(
        url=url,
        engine=engine,
        read_engine=read_engine,
        sessions=sessionmaker(engine, expire_on_commit=False),
        read_sessions=sessionmaker(read_engine, expire_on_commit=False),
        pg_connect_args=None if is_sqlite(url) else dict(pg_connect_args),
    )
