"""The Alembic migrations build exactly the schema the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from maildesk.store import migrate
from maildesk.store.models import Base
from maildesk.store.session import make_engine


def _diff(url: str) -> list[object]:
    engine = make_engine(url)
    migrate.upgrade(engine)
    migrate.upgrade(engine)  # running it again is harmless
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True,
                                                               "include_object": _not_full_text_index})
        return [d for d in compare_metadata(context, Base.metadata) if not _is_server_default_noise(d)]


def _not_full_text_index(obj: object, name: str | None, type_: str, reflected: bool, compare_to: object) -> bool:
    """The knowledge base's full-text index lives only in migration 0006, not in the models.

    SQLite: the FTS5 table ``kb_fts``, its shadow tables and ``kb_fts_vocab``; PostgreSQL: the expression
    index ``ix_kb_articles_fts``.  Skipped only when the database has them and the models do not.
    """
    if not reflected or compare_to is not None or name is None:
        return True
    return not (name.startswith("kb_fts") or name == "ix_kb_articles_fts")


def _is_server_default_noise(diff: object) -> bool:
    return isinstance(diff, list) and bool(diff) and diff[0][0] == "modify_default"


def test_migrations_match_the_models_on_sqlite(tmp_path: Path) -> None:
    assert _diff(f"sqlite:///{tmp_path / 'm.db'}") == []


@pytest.mark.postgres
def test_migrations_match_the_models_on_postgresql(pg_url: str) -> None:
    assert _diff(pg_url) == []


def test_head_is_the_latest_migration(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'h.db'}")
    migrate.upgrade(engine)
    assert migrate.current_revision(engine) == migrate.head_revision(engine)


def test_upgrading_a_database_with_tickets_keeps_them(tmp_path: Path) -> None:
    """Table rebuilds on SQLite must work while messages and events point at tickets."""
    from datetime import UTC, datetime

    from sqlalchemy import text

    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    migrate.upgrade(engine, "0002")
    now = datetime(2026, 11, 23, tzinfo=UTC).isoformat()
    with engine.begin() as c:
        c.execute(text("INSERT INTO tickets (id, number, subject, status, priority, category, language, "
                       "requester_addr, requester_name, created_at, updated_at, classification) VALUES "
                       "(1, 'TS20261123001', 'x', 'new', 'medium', 'other', 'zh-CN', 'a@b.c', '', :t, :t, '{}')"),
                  {"t": now})
        c.execute(text("INSERT INTO events (ticket_id, at, kind, actor, data) VALUES (1, :t, 'k', 'a', '{}')"),
                  {"t": now})
    migrate.upgrade(engine)
    with engine.connect() as c:
        assert c.execute(text("SELECT number FROM tickets")).scalar() == "TS20261123001"
        assert c.execute(text("SELECT count(*) FROM events WHERE ticket_id = 1")).scalar() == 1
        assert c.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
