"""The queries of the knowledge base: articles, and the full-text index on each backend.

SQLite: ``kb_fts`` (FTS5, ``bm25()`` ranks; lower is better) and ``kb_fts_vocab``
for document frequencies.  PostgreSQL: ``to_tsvector('simple', search_text)``
with its GIN index, ``ts_rank`` ranks (higher is better).  Both return the
candidates best first; ``kb.search`` decides which are good enough.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import bindparam, func, select, text
from sqlalchemy.orm import Session

from maildesk.store.models import KbArticle

CANDIDATES = 20

_SQLITE_SEARCH = text(
    "SELECT a.id, a.number, a.title, a.search_text, bm25(kb_fts) AS rank "
    "FROM kb_fts JOIN kb_articles a ON a.id = kb_fts.rowid "
    "WHERE kb_fts MATCH :match ORDER BY rank, a.id LIMIT :limit")
_PG_SEARCH = text(
    "SELECT a.id, a.number, a.title, a.search_text, "
    "ts_rank(to_tsvector('simple', a.search_text), to_tsquery('simple', :query)) AS rank "
    "FROM kb_articles a WHERE to_tsvector('simple', a.search_text) @@ to_tsquery('simple', :query) "
    "ORDER BY rank DESC, a.id LIMIT :limit")
_SQLITE_DF = text("SELECT term, doc FROM kb_fts_vocab WHERE term IN :terms").bindparams(
    bindparam("terms", expanding=True))
_PG_DF = text(
    "SELECT t.term, (SELECT count(*) FROM kb_articles a "
    "WHERE to_tsvector('simple', a.search_text) @@ to_tsquery('simple', t.term)) "
    "FROM unnest(CAST(:terms AS text[])) AS t(term)")


def next_article_sequence(session: Session) -> int:
    """One more than the highest article number (``KB0007`` → 8)."""
    numbers = session.scalars(select(KbArticle.number)).all()
    return max((int(n[2:]) for n in numbers if n[2:].isdigit()), default=0) + 1


def article_by_number(session: Session, number: str) -> KbArticle | None:
    return session.scalar(select(KbArticle).where(KbArticle.number == number.strip().upper()))


def article_by_ticket(session: Session, ticket_id: int) -> KbArticle | None:
    return session.scalar(select(KbArticle).where(KbArticle.source_ticket_id == ticket_id))


def articles_by_ids(session: Session, ids: Sequence[int]) -> list[KbArticle]:
    return list(session.scalars(select(KbArticle).where(KbArticle.id.in_(ids)).order_by(KbArticle.id)))


def list_articles(session: Session, limit: int | None = None) -> list[KbArticle]:
    return list(session.scalars(select(KbArticle).order_by(KbArticle.id).limit(limit)))


def article_count(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(KbArticle)) or 0)


def search_candidates(session: Session, terms: Sequence[str], match: str, query: str,
                      limit: int = CANDIDATES) -> list[tuple[int, str, str, str, float]]:
    """(id, number, title, search_text, backend rank) of articles with any of ``terms``, best first.

    ``match`` is the FTS5 expression, ``query`` the tsquery text; the backend picks the one it reads.
    """
    if not terms:
        return []
    if session.get_bind().dialect.name == "sqlite":
        rows = session.execute(_SQLITE_SEARCH, {"match": match, "limit": limit})
    else:
        rows = session.execute(_PG_SEARCH, {"query": query, "limit": limit})
    return [(r[0], r[1], r[2], r[3], float(r[4])) for r in rows]


def document_frequencies(session: Session, terms: Sequence[str]) -> dict[str, int]:
    """How many articles contain each term (0 for terms no article has)."""
    if not terms:
        return {}
    statement = _SQLITE_DF if session.get_bind().dialect.name == "sqlite" else _PG_DF
    found = {term: int(n) for term, n in session.execute(statement, {"terms": list(terms)})}
    return {t: found.get(t, 0) for t in terms}
