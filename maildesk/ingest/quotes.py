"""Find what the author of a reply wrote this time, without quoted history or signatures.

Pure and line based: the text is split into lines once; a line is examined in Python only
when one C-level regex says it could be a marker, lines longer than ``_MAX_MARKER``
never are, and markers and device signatures are looked for in the first ``_SCAN_LINES``
lines only (a reply whose new text is longer is kept whole), so hostile input stays cheap.
Also answers two small questions about a reply: is it only a thank-you, and does it say
the problem is not solved.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

_MAX_MARKER = 400  # no attribution, separator or header line is longer than this
_LOOKAHEAD = 8  # lines searched after a "From:" line for the rest of a header block
_SCAN_LINES = 20_000  # markers further down are not looked for
_BLANK_RUNS = re.compile(r"\n{3,}")

_SEPARATOR = re.compile(
    r"-{2,} ?(?:original message|original|message d'origine|ursprüngliche nachricht"
    r"|原始邮件|原始郵件|邮件原件|郵件原件|原邮件|回复的原邮件) ?-{2,}",
    re.IGNORECASE,
)
_RULE_LINE = re.compile(r"[_\-\u2014\u2500=]{10,}")
_FROM_KEYS = frozenset({"from", "发件人", "發件人", "寄件者", "寄件人", "von", "de"})
_DETAIL_KEYS = frozenset({
    "sent", "date", "to", "cc", "subject", "reply-to", "gesendet", "an", "betreff", "envoyé", "à", "objet",
    "发送时间", "时间", "日期", "收件人", "抄送", "主题", "寄件日期", "收件者", "副本", "主旨", "傳送時間",
})
_WROTE = ("wrote:", "wrote")
_WROTE_LOCALIZED = (
    "写道：", "写道:", "写道", "寫道：", "寫道:", "a écrit :", "a écrit:", "schrieb:", "escribió:", "scrisse:", "작성:",
)
_ATTRIBUTION_ENDS = (*_WROTE, *_WROTE_LOCALIZED, ">:")
_ATTRIBUTION_OPENERS = ("on ", "在", "于", "le ", "am ", "el ", "il ")
_DEVICE_SIGNATURE = re.compile(
    r"sent from my [\w .\-]{1,40}|sent from (?:mail|outlook) for (?:windows(?: 1[01])?|ios|android)"
    r"|sent from (?:outlook|yahoo mail)(?: for (?:ios|android))?|get outlook for (?:ios|android)"
    r"|获取 ?outlook for (?:ios|android)|发送自 ?windows ?1?[01]? ?版邮件[\w ]{0,6}"
    r"|(?:发自|来自)我的 ?(?:iphone|ipad|android|huawei|xiaomi|honor|redmi|oppo|vivo|samsung|galaxy|手机|华为|小米"
    r"|荣耀|一加|魅族|三星|安卓|平板)[\w .\-]{0,20}"
    r"|(?:发自|来自)(?:网易邮箱大师|企业微信|钉钉[\w ]{0,10}|qq邮箱[\w ]{0,6})",
    re.IGNORECASE,
)


# --- extract_reply ------------------------------------------------------------------------------


def extract_reply(text: str) -> str:
    """The new text of a reply; the signature-free or original text if nothing new is left."""
    lines = text.splitlines()
    reply = _tidy(_drop_signatures(_drop_history(_View.of(lines))))
    if reply:
        return reply
    return _tidy(_drop_signatures(lines)) or _tidy(lines)


_MARKER_START = tuple("-_\u2014\u2500=")
_MARKER_END = (":", "：", "wrote", "写道", "寫道")
# Could the line be a dashed line or a "Name:" header?  Possessive, so it never backtracks.
_CANDIDATE_START = re.compile(r"(?:\s|&nbsp;|\*)*+(?:[-_\u2014\u2500=]|[^:：]{0,20}[:：])")


@dataclass(frozen=True)
class _View:
    """The lines of a mail with, computed once each, the short lines that may be markers and their header keys."""

    lines: list[str]
    marks: list[str]  # the cleaned line when it could be a marker, else ""
    keys: list[str]  # the header name of a "Name: value" mark, else ""

    @classmethod
    def of(cls, lines: list[str]) -> _View:
        marks = [_mark(line) for line in lines[:_SCAN_LINES]]
        return cls(lines, marks, [_header_key(mark) if mark else "" for mark in marks])


def _clean(line: str) -> str:
    """A short line with HTML spaces made plain, for marker checks; "" for long lines."""
    if len(line) > _MAX_MARKER:
        return ""
    return line.replace("&nbsp;", " ").replace("\u00a0", " ").replace("\u3000", " ").strip()


def _mark(line: str) -> str:
    """The cleaned line if it is shaped like a marker (a header, a dashed line, an attribution's end), else ""."""
    if len(line) > _MAX_MARKER:
        return ""
    if _CANDIDATE_START.match(line) or line.rstrip().lower().endswith(_MARKER_END):
        return _clean(line)
    return ""


def _colon_at(line: str) -> int:
    """Where the colon of a ``Name: value`` line is (ASCII or full-width, within 20 characters), or -1."""
    head = line[:24].lstrip("*")
    found = [at for at in (head.find(":"), head.find("：")) if 0 <= at <= 20]
    return min(found) + len(line[:24]) - len(head) if found else -1


def _drop_history(view: _View) -> list[str]:
    """Lines before the first history marker, without ``>`` lines and their attributions."""
    lines, marks = view.lines, view.marks
    kept: list[str] = []
    index = 0
    while index < len(marks):
        line = lines[index]
        stripped = line.lstrip()
        if stripped.startswith(">"):
            index += 1
            continue
        if not stripped:
            kept.append(line)
            index += 1
            continue
        if marks[index] and _starts_history(view, index):
            return kept
        next_mark = marks[index + 1] if index + 1 < len(marks) else ""
        span = _attribution_span(view, index) if marks[index] or next_mark else 0
        if span:
            if not _next_is_quoted(lines, index + span):
                return kept  # history follows without ">" marks (e.g. rendered from HTML)
            index += span  # interleaved or bottom quoting: keep the answers between quotes
            continue
        kept.append(line)
        index += 1
    return kept + lines[index:]  # past the scanned window: kept as written


def _starts_history(view: _View, index: int) -> bool:
    line = view.marks[index]
    if not line.startswith(_MARKER_START):
        return _is_header_block(view.keys, index)
    if _SEPARATOR.fullmatch(line):
        return True
    if _RULE_LINE.fullmatch(line):
        following = _next_nonblank(view.lines, index + 1, 3)
        return following is not None and _is_header_block(view.keys, following)
    return _is_header_block(view.keys, index)


def _header_key(mark: str) -> str:
    """The lower-cased name of a ``Name: value`` line (also ``*Name:*`` and ``Name：``), or ""."""
    at = _colon_at(mark)
    return mark[:at].strip().strip("*").strip().lower() if at >= 0 else ""


def _is_header_block(keys: list[str], index: int) -> bool:
    """A From line followed closely by at least two other header lines (Outlook, Foxmail, QQ)."""
    if keys[index] not in _FROM_KEYS:
        return False
    details = set(keys[index + 1 : index + 1 + _LOOKAHEAD])
    return len(details & _DETAIL_KEYS) >= 2


def _is_attribution(line: str) -> bool:
    """One cleaned line such as "On … wrote:", "在 … 写道：" or "2026年11月23日 … <a@b>:"."""
    lowered = line.lower()
    if not lowered.endswith(_ATTRIBUTION_ENDS):
        return False
    if lowered.endswith(_WROTE):
        return lowered.startswith("on ") or "@" in line
    has_digit = any(char.isdigit() for char in line)
    if lowered.endswith(_WROTE_LOCALIZED):
        return has_digit
    return has_digit and "@" in line and line.endswith(">:")


def _attribution_span(view: _View, index: int) -> int:
    """How many lines the attribution at ``index`` takes: 0, 1, or 2 when a client wrapped it."""
    if view.marks[index] and _is_attribution(view.marks[index]):
        return 1
    second = view.marks[index + 1] if index + 1 < len(view.marks) else ""
    if not second.lower().endswith(_ATTRIBUTION_ENDS):
        return 0
    first = _clean(view.lines[index])
    if not first or second.lower().startswith(_ATTRIBUTION_OPENERS):
        return 0  # the next line starts an attribution of its own
    if not (first.lower().startswith(_ATTRIBUTION_OPENERS) or "@" in first or first.endswith("<")):
        return 0
    return 2 if _is_attribution(f"{first} {second}") else 0


def _next_nonblank(lines: list[str], start: int, limit: int) -> int | None:
    for index in range(start, min(len(lines), start + limit)):
        if lines[index].strip():
            return index
    return None


def _next_is_quoted(lines: list[str], start: int) -> bool:
    following = _next_nonblank(lines, start, _LOOKAHEAD)
    return following is not None and lines[following].lstrip().startswith(">")


_SIGNATURE_STARTS = ("sent ", "get ", "获取", "发送自", "发自", "来自")


def is_device_signature(line: str) -> bool:
    """True for "Sent from my iPhone", "发自我的iPhone", "来自钉钉专属商务邮箱" and the like."""
    if len(line) > 100 or not line.strip().lower().startswith(_SIGNATURE_STARTS):
        return False
    cleaned = _clean(line).rstrip(".\u3002!")
    return 0 < len(cleaned) <= 80 and _DEVICE_SIGNATURE.fullmatch(cleaned) is not None


def _drop_signatures(lines: list[str]) -> list[str]:
    """Cut at the standard "-- " delimiter and drop device signature lines."""
    if "-- " in lines:
        lines = lines[: lines.index("-- ")]
    head = [line for line in lines[:_SCAN_LINES] if not is_device_signature(line)]
    return head + lines[_SCAN_LINES:]


def _tidy(lines: list[str]) -> str:
    """Lines without trailing spaces, runs of blank lines folded, no blank lines around."""
    return _BLANK_RUNS.sub("\n\n", "\n".join([line.rstrip() for line in lines])).strip("\n")


# --- is_short_thanks / says_not_solved ----------------------------------------------------------

_THANKS_WORDS = frozenset({
    "谢谢", "多谢", "感谢", "非常感谢", "万分感谢", "谢了", "谢谢你", "谢谢您", "再次", "辛苦了", "辛苦",
    "收到", "已收到", "好的", "好", "嗯", "了解", "明白", "知道了", "麻烦了", "哈", "啦", "啊", "哦",
    "你好", "您好", "thanks", "thank", "thankyou", "thx", "ty", "tks", "many", "alot", "verymuch",
    "somuch", "again", "ok", "okay", "great", "cheers", "gotit", "noted", "much", "appreciated", "hi",
    "hello", "you",
})
_ACK_CORE = ("谢", "感谢", "收到", "好的", "了解", "明白", "知道了", "辛苦", "thank", "thx", "ty", "tks", "ok",
             "great", "cheers", "gotit", "noted", "appreciated")
_SURNAMES = frozenset(
    "王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗梁宋郑韩唐冯董萧程曹袁邓许傅沈曾彭吕苏卢蒋蔡贾丁魏薛叶余潘"
    "杜戴夏钟汪田任姜范方石姚谭廖邹熊金陆郝孔白崔康毛邱秦江史顾侯邵孟龙万段钱汤尹黎易常武乔贺赖龚文"
)
_NAME_LATIN = re.compile(r"[A-Z][a-z]{0,15}\.?(?: [A-Z][a-z]{0,15}\.?)?")
_NOT_SOLVED = (
    "还没解决", "没有解决", "没解决", "未解决", "问题依旧", "依旧不行", "依然不行", "仍然不行", "还是不行",
    "仍不行", "还不行", "还是不能", "还是没好", "还没好", "问题还在", "仍然存在", "依然存在", "还是一样",
    "还是报错", "仍然报错",
    "still not working", "still doesn't work", "still does not work", "still don't work", "still broken",
    "still failing", "still fails", "still the same", "still having", "still an issue", "still happening",
    "not fixed", "isn't fixed", "not resolved", "not solved", "doesn't work", "does not work", "not working",
    "didn't work", "did not work", "didn't help", "did not help", "same problem", "same issue",
)
_NEGATORS = ("不是", "并非", "not that it", "not that", "no longer")


def is_short_thanks(text: str) -> bool:
    """True when a reply only thanks or acknowledges ("谢谢！", "ok thanks 🙏", "收到\\n张三")."""
    if len(text) > 400 or says_not_solved(text):
        return False
    lines = [line.strip() for line in _drop_signatures(text.splitlines()) if line.strip()]
    if len(lines) > 1 and _looks_like_name(lines[-1]):
        lines.pop()
    letters = "".join(ch for ch in " ".join(lines).lower() if unicodedata.category(ch)[0] in "LN")
    acknowledged = any(word in letters for word in _ACK_CORE)
    return 0 < len(letters) <= 40 and acknowledged and _segments_into(letters, _THANKS_WORDS)


def _looks_like_name(line: str) -> bool:
    """A sign-off line: "张三", "Li Lei", "J. Smith"."""
    if 2 <= len(line) <= 3 and line[0] in _SURNAMES:
        return all(unicodedata.category(ch) == "Lo" for ch in line)
    return _NAME_LATIN.fullmatch(line) is not None


def _segments_into(letters: str, words: frozenset[str]) -> bool:
    """Whether ``letters`` is a concatenation of ``words`` (small dynamic programme)."""
    reachable = [True] + [False] * len(letters)
    for start in range(len(letters)):
        if reachable[start]:
            for word in words:
                if letters.startswith(word, start):
                    reachable[start + len(word)] = True
    return reachable[-1]


def says_not_solved(text: str) -> bool:
    """True when a reply says the problem persists ("还是不行", "still not working").

    Give it the reply text, not the whole body: quoted history would count.  A phrase
    right after a negation ("不是还没解决", "not that it doesn't work") does not count.
    """
    lowered = text[:20_000].lower().replace("\u2019", "'")
    for phrase in _NOT_SOLVED:
        start = lowered.find(phrase)
        while start != -1:
            if not _negated(lowered, start):
                return True
            start = lowered.find(phrase, start + 1)
    return False


def _negated(lowered: str, start: int) -> bool:
    """A negation ends at most two characters before ``start`` ("不是还没解决" holds "没解决" too)."""
    before = lowered[max(0, start - 16) : start]
    return any(negator in before[-(len(negator) + 2) :] for negator in _NEGATORS)
