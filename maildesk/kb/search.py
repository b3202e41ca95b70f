"""Knowledge-base search, the pure half: index terms of a text, the full-text queries, and the score.

The store's full-text index (SQLite FTS5, PostgreSQL ``to_tsvector('simple', …)``)
finds and orders the candidates; whether a candidate is *good enough to show a
requester* is decided here, the same way on both backends:

* Terms: jieba words of ``reports.terms.segment`` (stop words, names, numbers
  and the ``NOISE`` of requests left out), lower-cased and cut at anything
  that is not a letter or digit, so the words we index are exactly the tokens
  FTS5's ``unicode61`` tokenizer and PostgreSQL's ``simple`` configuration see
  in the space-joined text.
* Score: BM25 without length normalisation (``b = 0``), with a smoothed idf
  that never turns negative (FTS5's own ``bm25()`` gives every term of a
  one-article base an idf of ~0, and ``ts_rank`` has no idf at all), divided by
  the query's own best possible score — every query term found once.  So the
  score is the idf-weighted share of the mail's words an article covers, in
  ``[0, 1]``.  A term no article has counts as rare (df 1): a mail about
  something else is mostly words no article has, and scores low.
* Threshold: ``THRESHOLD`` (0.4) and at least ``MIN_MATCHED`` (2) distinct
  matching terms; one shared word never makes a suggestion.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from maildesk.reports.terms import segment

THRESHOLD = 0.4
MIN_MATCHED = 2
MAX_SUGGESTIONS = 3
MAX_QUERY_TERMS = 40  # the first distinct terms of subject + body; a long mail does not become a huge query
MAX_QUERY_CHARS = 2000  # of the body segmented for the query (jieba on a megabyte-long mail would take seconds)
K1 = 1.2
_PIECES = re.compile(r"[^\W_]+")
# Words of requests that say nothing about the problem, beyond the stop words of ``reports.terms``.
_NOISE_TEXT = "处理 出来 开始 公司 打不 不了 解决 已解决 一直 能否 帮助 帮忙 看看 一下 依然 仍然 总是 经常 突然"
NOISE = frozenset(_NOISE_TEXT.split())


@dataclass(frozen=True)
class Candidate:
    """An article the full-text index returned: its id, number, title and indexed terms."""

    article_id: int
    number: str
    title: str
    search_text: str
    backend_rank: float = 0.0  # bm25() or ts_rank of the backend (ordering only; kept for the record)


@dataclass(frozen=True)
class Suggestion:
    """An article good enough to suggest, with its normalised score and the terms that matched."""

    article_id: int
    number: str
    title: str
    score: float
    matched: tuple[str, ...]


def index_terms(text: str) -> list[str]:
    """The searchable words of ``text`` in order (repeats kept; they are term frequencies)."""
    terms: list[str] = []
    for word in segment(text):
        if word:
            terms.extend(p for p in _PIECES.findall(word.lower())
                         if (len(p) >= 2 or not p.isascii()) and p not in NOISE)
    return terms


def search_text(*parts: str) -> str:
    """What the index stores for an article: its terms joined by spaces."""
    return " ".join(index_terms("\n".join(p for p in parts if p)))


def query_terms(subject: str, body: str) -> tuple[str, ...]:
    """The distinct terms of a mail to search with (subject first), at most ``MAX_QUERY_TERMS``."""
    distinct = dict.fromkeys(index_terms(f"{subject[:200]}\n{body[:MAX_QUERY_CHARS]}"))
    return tuple(list(distinct)[:MAX_QUERY_TERMS])


def fts5_match(terms: Sequence[str]) -> str:
    """An FTS5 MATCH expression: any of the terms (each quoted, so no term is read as an operator)."""
    return " OR ".join(f'"{t}"' for t in terms)


def tsquery(terms: Sequence[str]) -> str:
    """A ``to_tsquery('simple', …)`` text: any of the terms (terms hold only letters and digits)."""
    return " | ".join(terms)


def idf(df: int, n_docs: int) -> float:
    """Smoothed, always positive inverse document frequency; an unknown term counts as in one article."""
    seen = max(df, 1)
    return math.log(1 + (max(n_docs, seen) - seen + 0.5) / (seen + 0.5))


def score(terms: Sequence[str], doc_terms: Iterable[str], df: Mapping[str, int],
          n_docs: int) -> tuple[float, tuple[str, ...]]:
    """Normalised score of one article for the query ``terms`` and the terms that matched."""
    tf = Counter(doc_terms)
    best = sum(idf(df.get(t, 0), n_docs) for t in terms)
    if best <= 0:
        return 0.0, ()
    matched = tuple(t for t in terms if tf[t])
    got = sum(idf(df.get(t, 0), n_docs) * tf[t] * (K1 + 1) / (tf[t] + K1) for t in matched)
    return min(1.0, got / best), matched


def choose(terms: Sequence[str], candidates: Iterable[Candidate], df: Mapping[str, int], n_docs: int, *,
           threshold: float = THRESHOLD, limit: int = MAX_SUGGESTIONS) -> tuple[Suggestion, ...]:
    """The best articles that pass the threshold, best first (ties: the backend's order, then the number)."""
    passed: list[tuple[float, int, Suggestion]] = []
    for position, candidate in enumerate(candidates):
        value, matched = score(terms, candidate.search_text.split(), df, n_docs)
        if value >= threshold and len(matched) >= MIN_MATCHED:
            passed.append((value, position, Suggestion(candidate.article_id, candidate.number, candidate.title,
                                                       round(value, 3), matched)))
    passed.sort(key=lambda item: (-item[0], item[1]))
    return tuple(s for _, _, s in passed[:limit])
