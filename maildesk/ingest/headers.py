"""Read the structured headers of a mail: addresses, message ids, dates and MIME parameters.

Pure: stdlib only, never raises.  Each reader returns its value and the defects
it met; an address it is unsure of is dropped with a defect, never guessed.
"""

from __future__ import annotations

import re
import urllib.parse
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_tz

from maildesk.domain import Address
from maildesk.ingest.charsets import decode_bytes, decode_header_value, decode_raw_header_text, to_raw_bytes

_ADDR = re.compile(r"[^\s@<>()\[\],;:\"\\]+@[^\s@<>()\[\],;:\"\\]+")
_MSGID = re.compile(r"<([^<>\s]+)>")
_BARE_ID = re.compile(r"[^\s<>,;\"]+@[^\s<>,;\"]+")
_ZONE = re.compile(r"\d:\d{2}(?::\d{2})?\s*(?:[+-]\d{2,4}|\(?[A-Za-z]{1,5}\b)")
_LIST_TOKENS = re.compile(r"<[^<>]*>|[,;]")
_PARAM_KEY = re.compile(r"^([!#$%&'+\-.^_`|~0-9A-Za-z]+?)(?:\*(\d+))?(\*)?$")


def _split_plain_list(value: str) -> list[str]:
    """The common case without quotes or comments, in one linear pass ("<...>" is skipped whole)."""
    pieces: list[str] = []
    start = 0
    for match in _LIST_TOKENS.finditer(value):
        if match.group() in ",;":
            pieces.append(value[start : match.start()])
            start = match.end()
    pieces.append(value[start:])
    return pieces


def _split_addresses(value: str) -> tuple[list[str], bool]:
    """Split an address list at commas/semicolons outside quotes, comments and angle brackets."""
    if '"' not in value and "(" not in value and ")" not in value:
        return _split_plain_list(value), value.count("<") == value.count(">")
    pieces: list[str] = []
    current: list[str] = []
    quoted, comment, angle, escaped = False, 0, False, False
    for char in value:
        if escaped:
            escaped = False
        elif char == "\\" and (quoted or comment):
            escaped = True
        elif char == '"' and not comment:
            quoted = not quoted
        elif not quoted and char == "(":
            comment += 1
        elif not quoted and char == ")" and comment:
            comment -= 1
        elif not quoted and not comment and char in "<>":
            angle = char == "<"
        elif char in ",;" and not (quoted or comment or angle):
            pieces.append("".join(current))
            current = []
            continue
        current.append(char)
    pieces.append("".join(current))
    return pieces, not (quoted or comment or angle)


def _decode_name(raw: str) -> str:
    name = raw.strip()
    if len(name) >= 2 and name[0] == name[-1] == '"':
        name = re.sub(r"\\(.)", r"\1", name[1:-1])
    text, _ = decode_header_value(name)
    return text.strip().strip('"').strip()


_QUOTED = re.compile(r'"(?:[^"\\]|\\.)*"')


def _one_address(piece: str) -> Address | None:
    """Address of one list element, or None when its shape is ambiguous."""
    piece = re.sub(r"^[^<\"]*:", "", piece.strip()).strip()  # "group:" prefix
    # Brackets inside a quoted display name are text ('"<b>Li</b>" <li@x>'): count and cut outside quotes only.
    masked = _QUOTED.sub(lambda m: "_" * len(m.group()), piece)
    if masked.count("<") > 1 or masked.count(">") > 1 or masked.count("<") != masked.count(">"):
        return None
    if "<" in masked:
        start, end = masked.index("<"), masked.index(">")
        if end < start:
            return None
        name, addr, tail = piece[:start], piece[start + 1:end], piece[end + 1:]
        if re.sub(r"\([^()]*\)", "", tail).strip():
            return None  # text after the address: "a <x@y> b@z"
    else:
        comments = re.findall(r"\(([^()]*)\)", piece)
        addr, name = re.sub(r"\([^()]*\)", "", piece), " ".join(comments)
    addr = addr.strip()
    outside_quotes = _QUOTED.sub("", name)
    if not _ADDR.fullmatch(addr) or outside_quotes.count("(") != outside_quotes.count(")"):
        return None
    local, _, domain = addr.rpartition("@")
    return Address(addr=f"{local}@{domain.lower()}", name=_decode_name(name))


def parse_addresses(value: str | None) -> tuple[tuple[Address, ...], list[str]]:
    """Addresses of a To/Cc/From header value as the parser left it (raw 8-bit kept as surrogates)."""
    if not value:
        return (), []
    text, charset_defect = decode_raw_header_text(re.sub(r"\r?\n[ \t]*|\r", " ", value))
    defects = [charset_defect] if charset_defect else []
    pieces, balanced = _split_addresses(text)
    if not balanced:
        return (), [f"address: unbalanced quotes or brackets in {text[:80]!r}"]
    found: list[Address] = []
    for piece in pieces:
        if not re.sub(r"^[^<\"]*:|;", "", piece.strip()).strip():
            continue  # empty element or "undisclosed-recipients:;"
        address = _one_address(piece)
        if address is None:
            defects.append(f"address: unreadable {piece.strip()[:80]!r}")
        else:
            found.append(address)
    return tuple(found), defects


def parse_message_ids(value: str | None) -> tuple[str, ...]:
    """Message ids without brackets, in order, duplicates removed; bare ids accepted if no brackets."""
    if not value:
        return ()
    text = re.sub(r"\s*[\r\n]+\s*", "", value) if "<" in value else value
    ids = _MSGID.findall(text) or _BARE_ID.findall(text)
    return tuple(dict.fromkeys(i.strip() for i in ids if i.strip()))


def parse_date(value: str | None) -> tuple[datetime | None, list[str]]:
    """An aware datetime (UTC when the zone is missing, with a defect) or None with a defect."""
    if not value or not value.strip():
        return None, []
    try:
        parts = parsedate_tz(value.strip())
        if parts is None:
            return None, [f"date: unreadable {value.strip()[:60]!r}"]
        year, month, day, hour, minute, second = parts[:6]
        stamp = datetime(year, month, day, hour, minute, min(second, 59), tzinfo=UTC)
    except (ValueError, TypeError, OverflowError, IndexError):
        return None, [f"date: unreadable {value.strip()[:60]!r}"]
    if parts[9] is None or not _ZONE.search(value):
        return stamp, [f"date: no time zone in {value.strip()[:60]!r}, read as UTC"]
    try:
        return stamp - timedelta(seconds=parts[9] or 0), []
    except OverflowError:
        return None, [f"date: out of range {value.strip()[:60]!r}"]


def _split_params(value: str) -> list[str]:
    if '"' not in value:
        return value.split(";")
    pieces: list[str] = []
    current: list[str] = []
    quoted, escaped = False, False
    for char in value:
        if escaped:
            escaped = False
        elif char == "\\" and quoted:
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == ";" and not quoted:
            pieces.append("".join(current))
            current = []
            continue
        current.append(char)
    pieces.append("".join(current))
    return pieces


def parse_content_header(value: str | None) -> tuple[str, dict[str, str], list[str]]:
    """(lower-cased main value, decoded parameters, defects) of Content-Type / Content-Disposition.

    Parameters follow RFC 2231 (continuations, charset'lang'%XX) and the RFC 2047
    words that Outlook and Chinese webmail put inside quoted filenames.
    """
    if not value:
        return "", {}, []
    pieces = _split_params(re.sub(r"\r?\n[ \t]*|\r", " ", value))
    main = pieces[0].strip().strip('"').strip().lower()
    segments: dict[str, list[tuple[int, bool, str]]] = {}
    for piece in pieces[1:]:
        key, sep, raw = piece.partition("=")
        match = _PARAM_KEY.match(key.strip())
        if not sep or not match:
            continue
        raw = raw.strip()
        if len(raw) >= 2 and raw[0] == raw[-1] == '"':
            raw = re.sub(r"\\(.)", r"\1", raw[1:-1])
        name, index, star = match.group(1).lower(), int(match.group(2) or 0), bool(match.group(3))
        segments.setdefault(name, []).append((index, star, raw))
    params, defects = {}, []
    for name, parts in segments.items():
        params[name], found = _join_param(sorted(parts, key=lambda p: p[0]))
        defects.extend(found)
    return main, params, defects


def _join_param(parts: list[tuple[int, bool, str]]) -> tuple[str, list[str]]:
    if not any(star for _, star, _ in parts):
        text, defects = decode_header_value("".join(raw for _, _, raw in parts))
        return text, defects
    charset: str | None = None
    data = bytearray()
    for position, (_, star, raw) in enumerate(parts):
        if star and position == 0 and raw.count("'") >= 2:
            charset, _, raw = raw.split("'", 2)
        data += urllib.parse.unquote_to_bytes(raw) if star else to_raw_bytes(raw)
    text, defect = decode_bytes(bytes(data), charset or None)
    return text, [defect] if defect else []
