"""The conditions of a rule: validated from a ``[rule.when]`` table, then matched against a mail.

Each condition is one key of the table and says, when it holds, *why* in a
short sentence ("subject contains '打印机'") so a decision can be explained.
A ``*_any`` list holds when one keyword occurs; a list of lists
(``text_any = [["ERP", "财务系统"], ["宕机", "down"]]``) when one keyword of
*each* inner list occurs; ``*_all`` when every keyword occurs.
Keyword lists compare NFKC-normalised, case-folded text with runs of
whitespace collapsed, so ``ＶＰＮ``, ``vpn`` and ``VPN`` are the same keyword;
a keyword starting with a Latin letter or digit must start a word
(``erp`` does not hit ``interpret``, ``print`` hits ``printer``).
"""

from __future__ import annotations

import fnmatch
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from maildesk.rules.regexguard import MAX_MATCH_CHARS, bounded_search, runaway_reason
from maildesk.rules.tomlsource import expect_type, string_list

_KEYWORD_FIELDS = ("subject", "body", "text")
KEYWORD_KEYS = frozenset(f"{f}_{m}" for f in _KEYWORD_FIELDS for m in ("any", "all"))
REGEX_KEYS = frozenset(f"{f}_regex" for f in _KEYWORD_FIELDS)
GLOB_KEYS = frozenset({"from", "from_domain", "to", "attachment_type"})
FLAG_KEYS = frozenset({"always", "has_attachment", "business_hours", "sender_vip"})
CONDITION_KEYS = KEYWORD_KEYS | REGEX_KEYS | GLOB_KEYS | FLAG_KEYS | {"headers", "sender_in_group"}
_SPACE = re.compile(r"\s+")


def normalise(text: str) -> str:
    """NFKC, case-folded, whitespace collapsed: the form keywords are compared in."""
    return _SPACE.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()


def contains_keyword(text: str, keyword: str) -> bool:
    """Whether normalised ``text`` holds normalised ``keyword`` (at a word start if it begins in ASCII)."""
    needs_boundary = keyword[:1].isascii() and keyword[:1].isalnum()
    start = text.find(keyword)
    while start >= 0:
        before = text[start - 1] if start else " "
        if not needs_boundary or not (before.isascii() and before.isalnum()):
            return True
        start = text.find(keyword, start + 1)
    return False


@dataclass(frozen=True)
class Condition:
    """One key of a ``when``/``unless`` table, validated."""

    key: str
    values: tuple[str, ...] = ()  # as written: globs, group ids, regexes
    keywords: tuple[tuple[tuple[str, str], ...], ...] = ()  # groups of (as written, normalised); each must hit
    patterns: tuple[re.Pattern[str], ...] = ()
    pairs: tuple[tuple[str, str], ...] = ()  # headers: (lower-cased name, glob)
    flag: bool = True
    line: int = 0


@dataclass(frozen=True)
class MailView:
    """A mail prepared once for matching: normalised texts and looked-up facts."""

    subject: str  # NFKC only, for regexes
    body: str
    sender: str | None  # lower-cased address
    recipients: tuple[str, ...]  # lower-cased: the mailbox it came to, To, Cc, Delivered-To
    headers: tuple[tuple[str, str], ...]
    attachments: tuple[tuple[str, str], ...]  # (filename, content type), lower-cased
    inside_hours: bool | None
    sender_groups: tuple[str, ...]
    vip_why: str | None

    def text(self, field_name: str) -> str:
        if field_name == "subject":
            return self.subject
        if field_name == "body":
            return self.body
        return f"{self.subject}\n{self.body}"

    @cached_property
    def _folded_subject(self) -> str:
        return normalise(self.subject[:MAX_MATCH_CHARS])

    @cached_property
    def _folded_body(self) -> str:
        return normalise(self.body[:MAX_MATCH_CHARS])

    def folded(self, field_name: str) -> str:
        """The text of a field in keyword form (computed once per mail)."""
        if field_name == "subject":
            return self._folded_subject
        if field_name == "body":
            return self._folded_body
        return f"{self._folded_subject}\n{self._folded_body}"


Problem = Callable[[str, str], None]  # (key, reason)


def parse_conditions(table: dict[str, Any], line_of: Callable[[str], int], problem: Problem) -> tuple[Condition, ...]:
    """Validate one conditions table; report each bad key through ``problem``."""
    found: list[Condition] = []
    for key, value in table.items():
        if key not in CONDITION_KEYS:
            problem(key, f"unknown condition '{key}' (known: {', '.join(sorted(CONDITION_KEYS))})")
            continue
        condition, reason = _parse_one(key, value, line_of(key))
        if reason:
            problem(key, reason)
        elif condition is not None:
            found.append(condition)
    return tuple(found)


def _parse_one(key: str, value: Any, line: int) -> tuple[Condition | None, str | None]:
    if key in FLAG_KEYS:
        if reason := expect_type(value, bool, key):
            return None, reason
        if key == "always" and not value:
            return None, "always = false never matches; remove the rule or the key"
        return Condition(key, flag=value, line=line), None
    if key == "headers":
        return _parse_headers(value, line)
    if key in KEYWORD_KEYS:
        return _parse_keywords(key, value, line)
    values, reason = string_list(value, key)
    if reason:
        return None, reason
    if key in REGEX_KEYS:
        return _parse_regexes(key, values, line)
    return Condition(key, tuple(v.strip().lower() if key != "sender_in_group" else v for v in values), line=line), None


def _parse_keywords(key: str, value: Any, line: int) -> tuple[Condition | None, str | None]:
    """``[a, b]`` → one group (any) or one group per keyword (all); ``[[a, b], [c]]`` → groups (any only)."""
    nested = isinstance(value, list) and bool(value) and all(isinstance(v, list) for v in value)
    if nested and key.endswith("_all"):
        return None, f"{key} takes a flat list; lists of lists are for {key.removesuffix('_all')}_any"
    lists = value if nested else [value]
    groups: list[tuple[tuple[str, str], ...]] = []
    for item in lists:
        words, reason = string_list(item, key)
        if reason:
            return None, reason
        pairs = tuple((w, normalise(w)) for w in words)
        groups.extend(((pair,) for pair in pairs) if key.endswith("_all") else (pairs,))
    return Condition(key, keywords=tuple(groups), line=line), None


def _parse_regexes(key: str, values: tuple[str, ...], line: int) -> tuple[Condition | None, str | None]:
    for pattern in values:
        if reason := runaway_reason(pattern):
            return None, f"{key} /{pattern}/ refused: {reason}"
    compiled = tuple(re.compile(p, re.IGNORECASE) for p in values)
    return Condition(key, values, patterns=compiled, line=line), None


def _parse_headers(value: Any, line: int) -> tuple[Condition | None, str | None]:
    if reason := expect_type(value, dict, "headers"):
        return None, reason
    pairs: list[tuple[str, str]] = []
    for name, glob in value.items():
        if not isinstance(glob, str) or not glob:
            return None, f"headers.{name} must be a non-empty glob string"
        pairs.append((name.lower(), glob))
    if not pairs:
        return None, "headers must name at least one header"
    return Condition("headers", pairs=tuple(pairs), line=line), None


def match_condition(condition: Condition, view: MailView) -> str | None:
    """Why ``condition`` holds for the mail, or None if it does not."""
    key = condition.key
    if key in KEYWORD_KEYS:
        return _match_keywords(condition, view)
    if key in REGEX_KEYS:
        return _match_regex(condition, view)
    return _MATCHERS[key](condition, view)


def _match_keywords(condition: Condition, view: MailView) -> str | None:
    field_name = condition.key.rpartition("_")[0]
    text = view.folded(field_name)
    hits = []
    for group in condition.keywords:
        hit = next((orig for orig, folded in group if contains_keyword(text, folded)), None)
        if hit is None:
            return None
        hits.append(f"'{hit}'")
    where = "subject or body" if field_name == "text" else field_name
    return f"{where} contains {' and '.join(hits)}"


def _match_regex(condition: Condition, view: MailView) -> str | None:
    field_name = condition.key.removesuffix("_regex")
    text = unicodedata.normalize("NFKC", view.text(field_name)[:MAX_MATCH_CHARS])
    for pattern in condition.patterns:
        if found := bounded_search(pattern, text):
            where = "subject or body" if field_name == "text" else field_name
            return f"{where} matches /{pattern.pattern}/ ('{found.group(0)[:60]}')"
    return None


def _first_glob(candidates: tuple[str, ...], globs: tuple[str, ...]) -> tuple[str, str] | None:
    for candidate in candidates:
        for glob in globs:
            if fnmatch.fnmatchcase(candidate, glob):
                return candidate, glob
    return None


def _match_from(condition: Condition, view: MailView) -> str | None:
    hit = _first_glob((view.sender,) if view.sender else (), condition.values)
    return f"sender {hit[0]} matches '{hit[1]}'" if hit else None


def _match_from_domain(condition: Condition, view: MailView) -> str | None:
    domain = view.sender.rpartition("@")[2] if view.sender else None
    hit = _first_glob((domain,) if domain else (), condition.values)
    return f"sender domain {hit[0]} matches '{hit[1]}'" if hit else None


def _match_to(condition: Condition, view: MailView) -> str | None:
    hit = _first_glob(view.recipients, condition.values)
    return f"sent to {hit[0]} (matches '{hit[1]}')" if hit else None


def _match_attachment_type(condition: Condition, view: MailView) -> str | None:
    for filename, content_type in view.attachments:
        hit = _first_glob((content_type, filename), condition.values)
        if hit:
            return f"attachment '{filename or content_type}' matches '{hit[1]}'"
    return None


def _match_headers(condition: Condition, view: MailView) -> str | None:
    reasons = []
    for name, glob in condition.pairs:
        values = [v for k, v in view.headers if k == name and fnmatch.fnmatchcase(v.lower(), glob.lower())]
        if not values:
            return None
        reasons.append(f"header {name} '{values[0][:60]}' matches '{glob}'")
    return "; ".join(reasons)


def _match_flag(condition: Condition, view: MailView) -> str | None:
    facts: dict[str, tuple[bool | None, str, str]] = {
        "always": (True, "always", "always"),
        "has_attachment": (bool(view.attachments), "has an attachment", "has no attachment"),
        "business_hours": (view.inside_hours, "inside business hours", "outside business hours"),
        "sender_vip": (view.vip_why is not None, f"sender is VIP ({view.vip_why})", "sender is not VIP"),
    }
    actual, yes, no = facts[condition.key]
    if actual is None or actual != condition.flag:
        return None
    return yes if condition.flag else no


def _match_group(condition: Condition, view: MailView) -> str | None:
    for group in condition.values:
        if group in view.sender_groups:
            return f"sender is in group {group}"
    return None


_MATCHERS: dict[str, Callable[[Condition, MailView], str | None]] = {
    "from": _match_from,
    "from_domain": _match_from_domain,
    "to": _match_to,
    "attachment_type": _match_attachment_type,
    "headers": _match_headers,
    "sender_in_group": _match_group,
    **{key: _match_flag for key in FLAG_KEYS},
}
