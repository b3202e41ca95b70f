"""Knowledge-base articles as text: numbers, a draft from a resolved ticket, edits by mail, Markdown, "已解决".

Pure: strings in, values out.  The service stores what these functions decide.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from maildesk.ingest.quotes import says_not_solved

FIELDS = ("title", "problem", "cause", "solution")
# Field labels an agent may write at the start of a line in a reply to an article mail.
_LABELS = {
    "标题": "title", "title": "title",
    "问题": "problem", "问题描述": "problem", "problem": "problem",
    "原因": "cause", "cause": "cause",
    "解决方案": "solution", "解决办法": "solution", "solution": "solution",
}
_LABEL_LINE = re.compile(r"^\s*(" + "|".join(sorted(map(re.escape, _LABELS), key=len, reverse=True))
                         + r")\s*[:：]\s?(.*)$", re.IGNORECASE)
_CAUSE_LINE = re.compile(r"^\s*(?:原因|cause)\s*[:：]\s*(.+)$", re.IGNORECASE | re.MULTILINE)
_TAG = re.compile(r"【知识库】\s*(KB\d{4,})", re.IGNORECASE)
_SOLVED = ("问题已解决", "已经解决", "已解决", "解决了", "搞定了", "好了", "solved", "fixed", "resolved",
           "it works", "works now", "working now")
SOLVED_MAX_LETTERS = 60


@dataclass(frozen=True)
class ArticleDraft:
    """What an article says; all four texts, possibly empty (cause often is)."""

    title: str
    problem: str
    cause: str
    solution: str
    category: str


def format_number(sequence: int) -> str:
    """``KB0001``; four digits at least, more when the base outgrows them."""
    if sequence < 1:
        raise ValueError(f"an article number must be positive, not {sequence}")
    return f"KB{sequence:04d}"


def find_tag(subject: str) -> str | None:
    """The article number of a subject tagged ``【知识库】KB0001`` (a reply to an article mail)."""
    found = _TAG.search(subject or "")
    return found.group(1).upper() if found else None


def draft_from_ticket(subject: str, request: str, solution: str, category: str) -> ArticleDraft:
    """A resolved ticket as an article: a ``原因:``/``Cause:`` line of the solution becomes the cause."""
    cause_line = _CAUSE_LINE.search(solution)
    cause = cause_line.group(1).strip() if cause_line else ""
    rest = _CAUSE_LINE.sub("", solution).strip() if cause_line else solution.strip()
    return ArticleDraft(title=subject.strip()[:200], problem=request.strip()[:8000], cause=cause[:2000],
                        solution=rest[:8000], category=category)


def parse_edit(text: str) -> dict[str, str]:
    """Fields an agent's reply sets: ``标题:``/``Title:``, ``问题:``, ``原因:``, ``解决方案:`` lines.

    A field's text runs from its label to the next label or to the quoted
    original (a line starting with ``>`` or a client's "On … wrote" header,
    which the parser already cut from the reply text).  Text before the first
    label is ignored; a field given twice keeps the last.
    """
    fields: dict[str, list[str]] = {}
    current: str | None = None
    for line in text.splitlines():
        if line.lstrip().startswith(">"):
            break
        found = _LABEL_LINE.match(line)
        if found:
            current = _LABELS[found.group(1).lower()]
            fields[current] = [found.group(2)]
        elif current is not None:
            fields[current].append(line)
    return {name: "\n".join(lines).strip() for name, lines in fields.items() if "\n".join(lines).strip()}


def says_solved(text: str) -> bool:
    """True when a short reply says the problem is solved ("已解决", "问题已解决，谢谢", "solved, thanks").

    Long mails, questions ("已解决了吗？") and "还没解决" never count.
    """
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith(">")]
    first = " ".join(lines[:3]).lower()
    letters = [ch for ch in first if ch.isalnum()]
    if not letters or len(letters) > SOLVED_MAX_LETTERS or says_not_solved(first):
        return False
    if "?" in first or "？" in first or "吗" in first:
        return False
    return any(phrase in first for phrase in _SOLVED)


def to_markdown(number: str, draft: ArticleDraft, *, version: int, source: str | None, updated: str) -> str:
    """One article as a Markdown file (headings in both languages, so either desk can read it)."""
    lines = [f"# {number} {draft.title}", "",
             f"- 分类 / Category: {draft.category}",
             f"- 版本 / Version: {version}",
             f"- 来源工单 / Source ticket: {source or '—'}",
             f"- 更新 / Updated: {updated}", ""]
    for heading, body in (("问题 / Problem", draft.problem), ("原因 / Cause", draft.cause),
                          ("解决方案 / Solution", draft.solution)):
        lines += [f"## {heading}", "", body.strip() or "—", ""]
    return "\n".join(lines)
