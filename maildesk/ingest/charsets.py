"""Turn the bytes and encoded words of real-world mail into text, whatever charset label they carry.

Pure: stdlib codecs only.  Every function here returns text and never raises;
what had to be guessed is returned as a defect sentence for ``ParsedMail.defects``.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import functools
import re

# Labels seen in the wild mapped to the codec that actually decodes them.
# GB2312/GBK mail routinely contains GBK/GB18030-only characters, so the
# whole family is read as GB18030; Big5 mail is read as cp950 first.
_ALIASES: dict[str, str] = {
    "gb2312": "gb18030", "gbk": "gb18030", "x-gbk": "gb18030", "cp936": "gb18030",
    "ms936": "gb18030", "euc-cn": "gb18030", "x-euc-cn": "gb18030", "csgb2312": "gb18030",
    "gb_2312-80": "gb18030", "chinese": "gb18030", "936": "gb18030", "gb18030": "gb18030",
    "big5": "cp950", "x-big5": "cp950", "big-5": "cp950", "cn-big5": "cp950", "cp950": "cp950",
    "big5-hkscs": "big5hkscs", "big5hkscs": "big5hkscs",
    "ks_c_5601-1987": "cp949", "ks_c_5601": "cp949", "euc-kr": "cp949", "korean": "cp949",
    "unicode-1-1-utf-7": "utf-7", "utf7": "utf-7", "utf-7": "utf-7",
    "utf8": "utf-8", "utf-8": "utf-8", "x-utf8": "utf-8", "unicode-1-1-utf-8": "utf-8",
    "iso-2022-jp": "iso2022_jp_ext", "csiso2022jp": "iso2022_jp_ext", "iso-2022-jp-2": "iso2022_jp_2",
    "shift_jis": "cp932", "shift-jis": "cp932", "sjis": "cp932", "x-sjis": "cp932", "windows-31j": "cp932",
    "us-ascii": "ascii", "ascii": "ascii", "ansi_x3.4-1968": "ascii",
    "latin1": "cp1252", "iso-8859-1": "cp1252", "iso8859-1": "cp1252", "latin-1": "cp1252",
}
# After a failed declared charset, these are tried in order before giving up.
_FALLBACKS = ("utf-8", "gb18030")
# Charsets where any byte string decodes, so "success" proves nothing.
_PERMISSIVE = frozenset({"cp1252", "latin-1", "iso8859-15", "cp1250", "cp1251", "koi8-r", "ascii"})
_LEGACY_CJK = frozenset({"gb18030", "cp950", "big5hkscs", "cp949", "cp932"})
_SECOND_TRY = {"cp950": "big5hkscs"}
# 7-bit encodings: ASCII-only bytes still need the codec.
_SEVEN_BIT = frozenset({"utf-7", "iso2022_jp_ext", "iso2022_jp_2", "iso2022_jp", "iso2022_kr", "hz"})

_CJK = re.compile(r"[\u2000-\u206f\u3000-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\uff00-\uffef]")
# Bounded lengths keep a hostile header linear; real words, even broken ones, stay far below them.
ENCODED_WORD = re.compile(r"=\?([^?\s]{1,64})\?([QqBb])\?([^?]{0,2000}?)\?=")
_LINEBREAK = re.compile(r"\r\n|\r|\n")
_FOLD = re.compile(r"(?:\r\n|\r|\n)(?=[ \t])")


@functools.lru_cache(maxsize=256)
def normalize_charset(label: str | None) -> str | None:
    """The Python codec name for a MIME charset label, or None if unknown or missing."""
    if not label:
        return None
    name = label.strip().strip("\"'").strip().lower()
    name = name.split("*", 1)[0]  # RFC 2231 language suffix: utf-8*zh-cn
    if not name:
        return None
    name = _ALIASES.get(name, name)
    try:
        return _ALIASES.get(codecs.lookup(name).name, codecs.lookup(name).name)
    except (LookupError, ValueError):
        return None


def _utf8_text(data: bytes) -> str | None:
    """The text of bytes that are valid UTF-8 with at least one multi-byte sequence, else None."""
    if data.isascii():
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _is_cjk_text(text: str) -> bool:
    """Every non-ASCII character is CJK, CJK punctuation or full-width: what mislabelled UTF-8 mail holds.

    Short GBK strings can be valid UTF-8 by accident ("郑伟" reads as Hebrew and Greek), never as CJK.
    """
    return all(ord(ch) < 0x80 or _CJK.match(ch) for ch in text)


def _candidates(declared: str | None, data: bytes) -> list[str]:
    codec = normalize_charset(declared)
    order: list[str] = []
    if codec is None and b"\x1b$" in data:
        order.append("iso2022_jp_2")  # undeclared ISO-2022-JP still announces itself with escapes
    as_utf8 = _utf8_text(data) if codec in _PERMISSIVE or codec in _LEGACY_CJK else None
    if as_utf8 is not None and (codec in _PERMISSIVE or _is_cjk_text(as_utf8)):
        order.append("utf-8")  # mislabelled UTF-8
    if codec is not None:
        order.append(codec)
        if codec in _SECOND_TRY:
            order.append(_SECOND_TRY[codec])
    order.extend(_FALLBACKS)
    return list(dict.fromkeys(order))


def decode_bytes(data: bytes, declared: str | None) -> tuple[str, str | None]:
    """Decode ``data`` (declared charset, then UTF-8, then GB18030); return (text, defect or None)."""
    codec = normalize_charset(declared)
    if data.isascii() and codec not in _SEVEN_BIT and b"\x1b$" not in data:
        return data.decode("ascii"), None
    for candidate in _candidates(declared, data):
        try:
            text = data.decode(candidate)
        except (UnicodeDecodeError, LookupError, ValueError):
            continue
        if candidate == codec or (codec in _SECOND_TRY and candidate == _SECOND_TRY[codec]):
            return text, None
        if not declared:
            return text, f"charset: none declared, decoded as {candidate}"
        return text, f"charset: {declared} did not fit, decoded as {candidate}"
    fallback = codec if codec is not None else "utf-8"
    try:
        text = data.decode(fallback, errors="replace")
    except (LookupError, ValueError):
        fallback, text = "utf-8", data.decode("utf-8", errors="replace")
    return text, f"charset: undecodable bytes replaced ({declared or 'no charset'} → {fallback})"


def _fits(data: bytes, codec: str) -> bool:
    try:
        data.decode(codec)
    except UnicodeDecodeError:
        return False
    return True


def to_raw_bytes(text: str) -> bytes:
    """Recover the original bytes of a header decoded by the email package with surrogateescape."""
    return text.encode("utf-8", errors="surrogateescape")


def decode_raw_header_text(text: str) -> tuple[str, str | None]:
    """Header text as the parser left it: raw 8-bit bytes show up as lone surrogates."""
    if text.isascii():
        return text, None
    if not any("\udc80" <= ch <= "\udcff" for ch in text):
        return text, None
    raw = to_raw_bytes(text)
    try:
        return raw.decode("utf-8"), None  # RFC 6532 allows raw UTF-8 in headers
    except UnicodeDecodeError:
        decoded, _ = decode_bytes(raw, None)
    codec = "gb18030" if _fits(raw, "gb18030") else "utf-8 with replacements"
    return decoded, f"header: raw 8-bit bytes that are not UTF-8, decoded as {codec}"


def _decode_word_payload(encoding: str, payload: str) -> bytes:
    if encoding in "Bb":
        cleaned = re.sub(r"[^A-Za-z0-9+/]", "", payload)
        cleaned += "=" * (-len(cleaned) % 4)
        try:
            return base64.b64decode(cleaned)
        except (binascii.Error, ValueError):  # a lone trailing character: drop it
            return base64.b64decode(cleaned.rstrip("=")[: len(cleaned.rstrip("=")) // 4 * 4])
    raw = to_raw_bytes(payload.replace("_", " "))
    return re.sub(rb"=([0-9A-Fa-f]{2})", lambda m: bytes([int(m.group(1), 16)]), raw)


def _tokens(value: str) -> list[tuple[str | None, bytes | str]]:
    """Split into plain text (charset None) and encoded words (charset, bytes)."""
    tokens: list[tuple[str | None, bytes | str]] = []
    pos = 0
    for match in ENCODED_WORD.finditer(value):
        if match.start() > pos:
            tokens.append((None, value[pos : match.start()]))
        label = match.group(1)
        tokens.append((normalize_charset(label) or label.lower(), _decode_word_payload(match.group(2), match.group(3))))
        pos = match.end()
    if pos < len(value):
        tokens.append((None, value[pos:]))
    return tokens


def _merge_words(tokens: list[tuple[str | None, bytes | str]]) -> list[tuple[str | None, bytes | str]]:
    """Drop whitespace between encoded words and join adjacent words of one charset (split characters)."""
    merged: list[tuple[str | None, bytes | str]] = []
    for index, (charset, payload) in enumerate(tokens):
        between_words = (
            charset is None and isinstance(payload, str) and not payload.strip()
            and 0 < index < len(tokens) - 1 and tokens[index + 1][0] is not None and merged
            and merged[-1][0] is not None
        )
        if between_words:
            continue
        if charset is not None and merged and merged[-1][0] == charset:
            previous = merged[-1][1]
            assert isinstance(previous, bytes) and isinstance(payload, bytes)
            merged[-1] = (charset, previous + payload)
            continue
        merged.append((charset, payload))
    return merged


def decode_header_value(value: str) -> tuple[str, list[str]]:
    """Decode one header value: unfold, RFC 2047 words (even broken ones), raw 8-bit text; CR/LF → space."""
    if value.isascii() and "=?" not in value and "\n" not in value and "\r" not in value and "\x00" not in value:
        return value, []
    defects: list[str] = []
    unfolded = _LINEBREAK.sub(" ", _FOLD.sub("", value))
    pieces: list[str] = []
    for charset, payload in _merge_words(_tokens(unfolded)):
        if charset is None:
            assert isinstance(payload, str)
            text, defect = decode_raw_header_text(payload)
        else:
            assert isinstance(payload, bytes)
            text, defect = decode_bytes(payload, charset)
        pieces.append(text)
        if defect:
            defects.append(defect)
    return "".join(pieces).replace("\x00", ""), defects
