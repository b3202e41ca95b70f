"""Partly hide the personal details of one person before others see them (PROCESS.md §8).

Pure, stdlib only.  ``mask_phones`` hides four digits of every phone number in
a text — Chinese mobiles (``13812345678`` → ``138****5678``), landlines with an
area code (``0755-12345678`` → ``0755-****5678``), ``+86`` and other
international forms, full-width digits, numbers glued to Chinese text — and
leaves alone what only looks like one: ticket numbers, dates, times, amounts,
IP addresses, order ids, URLs, e-mail addresses and Message-IDs.

The four hidden digits are the four before the last four, so the tail a
person recognises stays readable.  Should a masked number still show seven or
more digits in a row (``0086`` glued to a mobile), more digits are hidden
until it does not.  Masking is idempotent: a masked number no longer looks
like a number.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

MASK = "*"
_FULLWIDTH = str.maketrans("０１２３４５６７８９（）－＋　", "0123456789()-+ ")
_SEP = r"[ \-\u00a0]?"  # one optional separator between digit groups

# Each alternative is one way of writing a phone number; none may start or end next to a
# character that would make it part of something longer (see _BEFORE / _AFTER).
_PHONE = re.compile(
    "|".join(
        (
            # Chinese mobile, optionally with the country code: +86 138 1234 5678, 008613812345678
            rf"(?:(?:\+|00)86{_SEP}|\(\+86\) ?)?1[3-9]\d{_SEP}\d{{4}}{_SEP}\d{{4}}",
            # landline with the area code: (010) 6543 2109, 0755-12345678, 021 6543-2109
            rf"(?:\(0\d{{2,3}}\) ?|0\d{{2,3}}{_SEP})\d{{3,4}}{_SEP}\d{{4}}",
            # landline in international form: +86 10 6543 2109, +86 (755) 1234-5678
            rf"(?:\+|00)86{_SEP}(?:\([1-9]\d{{1,2}}\) ?|[1-9]\d{{1,2}}{_SEP})\d{{3,4}}{_SEP}\d{{4}}",
            # other countries, always with '+': +1 415 555 0132, +44 20 7946 0958
            r"\+(?!86)[1-9]\d{0,2}(?:[ \-.]?\(?\d{1,4}\)?){2,5}",
        )
    )
)
# Not a phone number when glued to letters, digits, or the punctuation of decimals, dates,
# IPs, versions, paths, identifiers and key=value pairs.
_BEFORE = re.compile(r"[0-9A-Za-z_.\\#%@+\-]$")
_AFTER = re.compile(r"^(?:[0-9A-Za-z_@%]|[.:\-]\d)")
# Spans never touched: URLs, e-mail addresses and Message-IDs.
_PROTECTED = re.compile(
    r"(?:https?|ftp)://[^\s<>\"'）」】]+|www\.[^\s<>\"'）」】]+|<[^<>\s]+@[^<>\s]+>|[\w.+\-=]+@[\w\-]+(?:\.[\w\-]+)+",
    re.ASCII,
)
_MIN_DIGITS, _MAX_DIGITS = 7, 15
_LONGEST_RUN_LEFT = 6
_EMAIL = re.compile(r"(?<![\w.+\-])([\w.+\-]+)@([\w\-]+(?:\.[\w\-]+)+)", re.ASCII)
_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
_COMPOUND_SURNAMES = frozenset(
    ("欧阳", "司马", "诸葛", "上官", "东方", "皇甫", "尉迟", "公孙", "慕容", "令狐", "夏侯", "长孙", "宇文", "端木")
)


def mask_phones(text: str) -> str:
    """``text`` with four digits of every phone number replaced by ``*``."""
    if not text:
        return text
    plain = text.translate(_FULLWIDTH)  # same length: indices match ``text``
    protected = [m.span() for m in _PROTECTED.finditer(plain)]
    chars = list(text)
    for match in _PHONE.finditer(plain):
        start, end = match.span()
        if _inside(protected, start, end) or not _standalone(plain, start, end):
            continue
        digits = [i for i in range(start, end) if plain[i].isdigit()]
        if not _MIN_DIGITS <= len(digits) <= _MAX_DIGITS:
            continue
        for i in _digits_to_hide(plain, digits):
            chars[i] = MASK
    return "".join(chars)


def _standalone(plain: str, start: int, end: int) -> bool:
    return not _BEFORE.search(plain[max(0, start - 1):start]) and not _AFTER.match(plain[end:end + 2])


def _inside(spans: list[tuple[int, int]], start: int, end: int) -> bool:
    return any(s < end and start < e for s, e in spans)


def _digits_to_hide(plain: str, digits: list[int]) -> list[int]:
    """The four digits before the last four, then more until no run of 7 digits is left."""
    hidden = set(digits[-8:-4]) if len(digits) >= 8 else set(digits[:-4][-4:])
    visible = [i for i in digits if i not in hidden]
    run: list[int] = []
    for i in visible:
        run = run + [i] if run and i == run[-1] + 1 and plain[i - 1].isdigit() else [i]
        while len(run) > _LONGEST_RUN_LEFT:
            hidden.add(run.pop())
    return sorted(hidden)


def mask_email(addr: str) -> str:
    """``zhangsan@example.com`` → ``zh***@example.com``; the domain stays readable."""
    addr = addr.strip()
    local, at, domain = addr.rpartition("@")
    if not at:
        return _hide_word(addr) if addr else ""
    return f"{_hide_word(local)}@{domain}"


def _hide_word(word: str) -> str:
    if MASK * 3 in word:
        return word
    keep = 1 if len(word) <= 3 else 2
    return word[:keep] + MASK * 3


def mask_emails(text: str) -> str:
    """Every e-mail address in ``text`` masked like ``mask_email`` (Message-IDs too: they are ids, not people,
    but cannot be told apart from addresses in free text)."""
    return _EMAIL.sub(lambda m: mask_email(m.group(0)), text)


def mask_name(name: str) -> str:
    """``张三`` → ``张*``, ``欧阳娜娜`` → ``欧阳*``, ``John Smith`` → ``John S*``, an address → ``mask_email``."""
    name = " ".join(name.split())
    if not name:
        return ""
    if "@" in name:
        return mask_email(name)
    if name.endswith(MASK):
        return name
    if _CJK.match(name):
        head = name[:2] if name[:2] in _COMPOUND_SURNAMES and len(name) > 2 else name[:1]
        return head + MASK
    words = name.split(" ")
    if len(words) == 1:
        return _hide_word(words[0])
    return " ".join([words[0]] + [w[:1] + MASK for w in words[1:]])


def remove_names(text: str, names: Iterable[str]) -> str:
    """``text`` without the given people's names (whole Latin words, any Chinese occurrence)."""
    for name in names:
        for part in {name.strip(), *name.split()}:
            if len(part) < 2:
                continue
            pattern = re.escape(part) if _CJK.search(part) else rf"(?<![\w.@]){re.escape(part)}(?![\w@])"
            text = re.sub(pattern, " ", text, flags=re.IGNORECASE)
    return text


def mask_text(text: str) -> str:
    """Free text as others may see it: e-mail addresses and phone numbers masked."""
    return mask_phones(mask_emails(text))
