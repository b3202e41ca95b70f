"""knowledge base: articles and their full-text index

SQLite: an FTS5 table ``kb_fts`` over ``kb_articles.search_text`` (external content,
three triggers keep it in step) and ``kb_fts_vocab`` for document frequencies.
PostgreSQL: a GIN index on ``to_tsvector('simple', search_text)``.  The text is
jieba terms joined by spaces, so both tokenizers split Chinese where jieba did.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

SQLITE_FTS = (
    "CREATE VIRTUAL TABLE kb_fts USING fts5(search_text, content='kb_articles', content_rowid='id', "
    "tokenize='unicode61')",
    "CREATE VIRTUAL TABLE kb_fts_vocab USING fts5vocab(kb_fts, 'row')",
    "CREATE TRIGGER kb_articles_ai AFTER INSERT ON kb_articles BEGIN "
    "INSERT INTO kb_fts(rowid, search_text) VALUES (new.id, new.search_text); END",
    "CREATE TRIGGER kb_articles_ad AFTER DELETE ON kb_articles BEGIN "
    "INSERT INTO kb_fts(kb_fts, rowid, search_text) VALUES ('delete', old.id, old.search_text); END",
    "CREATE TRIGGER kb_articles_au AFTER UPDATE OF search_text ON kb_articles BEGIN "
    "INSERT INTO kb_fts(kb_fts, rowid, search_text) VALUES ('delete', old.id, old.search_text); "
    "INSERT INTO kb_fts(rowid, search_text) VALUES (new.id, new.search_text); END",
)
PG_INDEX = ("CREATE INDEX ix_kb_articles_fts ON kb_articles "
            "USING gin (to_tsvector('simple', search_text))")


def upgrade() -> None:
    op.create_table(
        "kb_articles",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("number", sa.String(length=16), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("problem", sa.Text(), nullable=False),
        sa.Column("cause", sa.Text(), nullable=False),
        sa.Column("solution", sa.Text(), nullable=False),
        sa.Column("category", sa.String(length=32), nullable=False),
        sa.Column("source_ticket_id", sa.Integer(), nullable=True),
        sa.Column("created_by", sa.String(length=320), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("search_text", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["source_ticket_id"], ["tickets.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("number"),
        sa.UniqueConstraint("source_ticket_id"),
    )
    if op.get_bind().dialect.name == "sqlite":
        for statement in SQLITE_FTS:
            op.execute(statement)
    else:
        op.execute(PG_INDEX)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for name in ("kb_articles_au", "kb_articles_ad", "kb_articles_ai"):
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
        op.execute("DROP TABLE IF EXISTS kb_fts_vocab")
        op.execute("DROP TABLE IF EXISTS kb_fts")
    else:
        op.execute("DROP INDEX IF EXISTS ix_kb_articles_fts")
    op.drop_table("kb_articles")
