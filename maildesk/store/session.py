"""Engines and sessions: the only place that knows which database is behind.

SQLite runs in WAL mode with a busy timeout, and every transaction begins
``IMMEDIATE`` so two writers queue instead of failing half-way (the ticket
sequence relies on this).  PostgreSQL is used as it is.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from maildesk.errors import StoreError, StoreUnavailableError

SQLITE_BUSY_TIMEOUT_MS = 30_000


def make_engine(url: str, *, echo: bool = False) -> Engine:
    """An engine for ``url``; SQLite files get their folder created and WAL turned on."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(url, parsed.database, echo)
    return create_engine(url, echo=echo, pool_pre_ping=True, pool_size=5, max_overflow=5)


def _sqlite_engine(url: str, database: str | None, echo: bool) -> Engine:
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, echo=echo, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


SessionFactory = sessionmaker[Session]
__all__ = ["Connection", "Session", "SessionFactory", "core_transaction", "make_engine", "make_session_factory",
           "transaction", "translate"]


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any error.

    Database errors leave as ``StoreUnavailableError`` when the server cannot
    be reached (so callers retry later) and ``StoreError`` otherwise.
    """
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


@contextmanager
def core_transaction(factory: sessionmaker[Session]) -> Iterator[Connection]:
    """``transaction`` on a bare connection, without an ORM Session: for a few Core statements on a hot path
    (the sender marks every sent mail in its own transaction)."""
    engine: Engine = factory.kw["bind"]
    with engine.begin() as connection:
        yield connection


def translate(exc: BaseException) -> StoreError | None:
    """Our error for a database exception, or None when it is not one."""
    if isinstance(exc, OperationalError):
        return StoreUnavailableError(f"database unavailable: {_first_line(exc)}")
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return StoreUnavailableError(f"database connection lost: {_first_line(exc)}")
    if isinstance(exc, DBAPIError):
        return StoreError(f"database error: {_first_line(exc)}")
    return None


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", exc)) or exc.__class__.__name__
    return text.strip().splitlines()[0][:300]
