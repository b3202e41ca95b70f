"""The satisfaction survey: reading a rating from a reply, and binding it to its ticket.

Pure.  The scale is 4 = 非常满意 (very satisfied), 3 = 满意, 2 = 一般, 1 = 不满意.
A requester answers with the word (Chinese or English, anywhere in the first
lines: "非常满意，谢谢"), a number alone on the first line ("4"), or a labelled
number ("评分：4", "rating: 2"); or by a mailto link of the resolution notice,
whose subject carries the number and a token (``【技术支持】TS… 满意度 4 [s:<token>]``).
The token is an HMAC of the ticket number under the installation secret, so
a rating that quotes another ticket's token is rejected by
``verify_survey_token(secret, number_in_tag, token)``.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import unicodedata
from dataclasses import dataclass
from urllib.parse import quote

RATINGS = ("very-satisfied", "satisfied", "neutral", "dissatisfied")
SCORES = {"very-satisfied": 4, "satisfied": 3, "neutral": 2, "dissatisfied": 1}
LABELS = {
    "zh-CN": {"very-satisfied": "非常满意", "satisfied": "满意", "neutral": "一般", "dissatisfied": "不满意"},
    "en": {"very-satisfied": "Very satisfied", "satisfied": "Satisfied", "neutral": "Neutral",
           "dissatisfied": "Dissatisfied"},
}
TOKEN_LENGTH = 16
_BY_SCORE = {score: value for value, score in SCORES.items()}
_FIRST_LINES = 3  # a rating word counts only near the top of the reply
_EDGE = " \t\r\n,.;:!?~-_、，。；：！？…·()（）【】[]\"'“”‘’"

# Order matters: at one position the first alternative wins, so the longer
# phrase ("非常满意", "不满意") is tried before the word inside it ("满意").
_WORDS: tuple[tuple[str, str], ...] = (
    (r"非常不满意|很不满意|不太满意|不是很满意|不满意|没有满意", "dissatisfied"),
    (r"非常满意|十分满意|特别满意|很满意", "very-satisfied"),
    (r"(?<![不])满意(?!度)", "satisfied"),
    (r"\b(?:very\s+dissatisfied|dissatisfied|unsatisfied|not\s+(?:very\s+)?satisfied)\b", "dissatisfied"),
    (r"\b(?:very|extremely|highly)\s+satisfied\b", "very-satisfied"),
    (r"\bsatisfied\b", "satisfied"),
    (r"\bneutral\b", "neutral"),
)
_WORD_RE = re.compile("|".join(f"(?P<w{i}>{pattern})" for i, (pattern, _) in enumerate(_WORDS)), re.IGNORECASE)
_NEUTRAL_RE = re.compile(
    r"(?:^|(?<=[\s,.;:!?，。；：！？、])|(?<=感觉)|(?<=觉得)|(?<=总体)|(?<=整体)|(?<=服务))"
    r"(?:一般般|一般|还行|so-so|average)(?=$|吧|[\s,.;:!?，。；：！？、])",
    re.IGNORECASE,
)
_LABELLED_RE = re.compile(
    r"(?:评分|打分|满意度|评价|\brating|\bscore)\s*[:=]?\s*(?P<n>[1-4])\s*(?:分|/\s*4)?(?![\d.])"
    r"(?:\s*[(（]\s*[^()（）\n]{1,20}?\s*[)）])?",
    re.IGNORECASE,
)
_LONE_RE = re.compile(r"^\s*(?P<n>[1-4])\s*(?:分|/\s*4)?\s*[.!。！]?\s*$")
_PROMPT_RE = re.compile(r"(?:意见\s*[(（]可选[)）]|Comment\s*\(optional\))\s*[:：]\s*", re.IGNORECASE)  # of mailto_link
_MARKER_RE = re.compile(r"(?P<number>TS\d{11,14})[^\n\[\]]{0,60}?\[s:(?P<token>[0-9a-fA-F]{16})\]")


@dataclass(frozen=True)
class Rating:
    """One answer to the survey: ``value`` of ``RATINGS``, ``score`` 4..1, and what else was written."""

    value: str
    score: int
    comment: str


def label(value: str, locale: str) -> str:
    """The word for a rating in ``locale`` (zh-CN unless English)."""
    return LABELS["en" if locale.lower().startswith("en") else "zh-CN"][value]


def parse_rating(text: str) -> Rating | None:
    """The rating in a reply's new text, or None when it holds none.

    A labelled number ("评分：4") wins; then, on the first non-empty lines in
    order, a number alone on the first line or a rating word.
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    folded = _fold(text)
    labelled = _LABELLED_RE.search(folded)
    if labelled:
        return _rating(_BY_SCORE[int(labelled.group("n"))], text, labelled.span())
    offset = 0
    lines = folded.split("\n")
    seen = 0
    for line in lines:
        if line.strip() and not line.lstrip().startswith(">"):
            found = _find_in_line(line, first=seen == 0)
            if found:
                value, (start, end) = found
                return _rating(value, text, (offset + start, offset + end))
            seen += 1
            if seen >= _FIRST_LINES:
                break
        offset += len(line) + 1
    return None


def _fold(text: str) -> str:
    """Full-width digits, letters and punctuation to ASCII (NFKC), character by character.

    The result has the same length as ``text``, so a match in it cuts the original.
    """
    return "".join(n if len(n := unicodedata.normalize("NFKC", ch)) == 1 else ch for ch in text)


def _find_in_line(line: str, *, first: bool) -> tuple[str, tuple[int, int]] | None:
    """A rating on one line: a lone number (first line only), a rating word, or a lone "一般"."""
    if first:
        lone = _LONE_RE.match(line)
        if lone:
            return _BY_SCORE[int(lone.group("n"))], (0, len(line))
    word = _WORD_RE.search(line)
    if word and word.lastgroup:
        return _WORDS[int(word.lastgroup[1:])][1], word.span()
    neutral = _NEUTRAL_RE.search(line)
    if neutral:
        return "neutral", neutral.span()
    return None


def _rating(value: str, text: str, span: tuple[int, int]) -> Rating:
    """The rating with the rest of the text as its comment, the rating words cut out."""
    start, end = span
    before, after = text[:start], text[end:]
    left, right = before.rstrip(_EDGE), after.lstrip(_EDGE)
    gap = before[len(left):] + after[: len(after) - len(right)]
    glue = "\n" if "\n" in gap else next((ch for ch in gap if ch in "，,；;。."), " ")
    comment = f"{left}{glue}{right}" if left and right else left or right
    return Rating(value=value, score=SCORES[value], comment=_PROMPT_RE.sub("", comment).strip())


def survey_token(secret: str, number: str) -> str:
    """The token that binds a survey answer to ticket ``number`` (HMAC-SHA256, 16 hex characters)."""
    if not secret:
        raise ValueError("the survey secret must not be empty")
    digest = hmac.new(secret.encode("utf-8"), f"survey:{number}".encode(), hashlib.sha256)
    return digest.hexdigest()[:TOKEN_LENGTH]


def verify_survey_token(secret: str, number: str, token: str) -> bool:
    """Whether ``token`` was made for ticket ``number`` (constant-time comparison)."""
    if len(token) != TOKEN_LENGTH:
        return False
    return hmac.compare_digest(survey_token(secret, number), token.lower())


def find_survey_token(text_or_subject: str) -> tuple[str, str] | None:
    """``(number, token)`` from our survey marker: a ticket number, then ``[s:<token>]`` on the same line.

    Finds it in a mailto subject (``【技术支持】TS… 满意度 4 [s:…]``) and in the
    quoted resolution notice (``工单编号：TS… [s:…]``).  Only the shape is checked
    here; the runner verifies the token against the number in the subject tag.
    """
    found = _MARKER_RE.search(_fold(text_or_subject))
    if not found:
        return None
    return found.group("number"), found.group("token").lower()


def mailto_link(support_address: str, number: str, token: str, rating: str, locale: str) -> str:
    """A ``mailto:`` URI (RFC 6068) that answers the survey with ``rating``; subject and body percent-encoded UTF-8."""
    if rating not in SCORES:
        raise ValueError(f"rating must be one of {', '.join(RATINGS)}, got {rating!r}")
    score = SCORES[rating]
    english = locale.lower().startswith("en")
    word = "rating" if english else "满意度"
    subject = f"【技术支持】{number} {word} {score} [s:{token}]"
    if english:
        body = f"Rating: {score} ({label(rating, 'en')})\n\nComment (optional):\n"
    else:
        body = f"评分：{score}（{label(rating, 'zh-CN')}）\n\n意见（可选）：\n"
    body = body.replace("\n", "\r\n")  # RFC 6068: line breaks in body are %0D%0A
    return f"mailto:{quote(support_address, safe='@')}?subject={quote(subject, safe='')}&body={quote(body, safe='')}"


def survey_choices(secret: str, support_address: str, number: str, locale: str) -> list[dict[str, object]]:
    """The ``survey`` context of the resolution notice: value, label, score and mailto link per rating."""
    token = survey_token(secret, number)
    return [
        {"value": value, "label": label(value, locale), "score": SCORES[value],
         "mailto": mailto_link(support_address, number, token, value, locale)}
        for value in RATINGS
    ]
