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
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return [d for d in compare_metadata(context, Base.metadata) if not _is_server_default_noise(d)]


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
