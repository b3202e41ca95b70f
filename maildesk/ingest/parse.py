"""Turn the raw bytes of one mail into a ``ParsedMail``: what a person would read, decoded.

Pure and total: ``parse_mail`` never raises.  Whatever it had to guess, skip or
cut is recorded in ``ParsedMail.defects``; whatever it stopped reading because
of ``ParseLimits`` also sets ``truncated``.  The MIME tree is read with the
stdlib parser in its fast compat32 policy; headers, parameters and charsets are
decoded by ``headers`` and ``charsets``, HTML by ``html2text``, winmail.dat by ``tnef``.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field, replace
from email.message import Message
from email.parser import BytesParser
from email.policy import compat32

from maildesk.domain import Address, Attachment, ParsedMail
from maildesk.ingest.charsets import decode_bytes, decode_header_value
from maildesk.ingest.headers import parse_addresses, parse_content_header, parse_date, parse_message_ids
from maildesk.ingest.html2text import html_to_text
from maildesk.ingest.quotes import extract_reply
from maildesk.ingest.tnef import TnefError, read_tnef

FORWARD_SEPARATOR = "---------- Forwarded message ----------"
_TEXT_TYPES = frozenset({"text/plain", "text/html"})
_TNEF_TYPES = frozenset({"application/ms-tnef", "application/vnd.ms-tnef"})
_HEADER_END = re.compile(rb"\r?\n\r?\n")


@dataclass(frozen=True)
class ParseLimits:
    """How much of one mail is read; past a limit the parser stops, keeps what it has and says so."""

    max_depth: int = 20
    max_parts: int = 1000
    max_text_chars: int = 2_000_000
    max_header_bytes: int = 256 * 1024
    max_references: int = 32

    def __post_init__(self) -> None:
        for name in ("max_depth", "max_parts", "max_text_chars", "max_header_bytes", "max_references"):
            if getattr(self, name) < 1:
                raise ValueError(f"ParseLimits.{name} must be at least 1, not {getattr(self, name)}")


DEFAULT_LIMITS = ParseLimits()


@dataclass
class _Reading:
    """What one walk over the MIME tree has gathered so far."""

    limits: ParseLimits
    texts: list[str] = field(default_factory=list)
    html: list[str] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)
    defects: list[str] = field(default_factory=list)
    parts: int = 0
    chars: int = 0
    quiet: int = 0  # > 0 while walking alternatives that were not chosen
    truncated: bool = False

    def defect(self, text: str) -> None:
        if text not in self.defects and len(self.defects) < 200:
            self.defects.append(text)

    def hit_limit(self, name: str, detail: str) -> None:
        self.truncated = True
        self.defect(f"limit: {name} reached ({detail}), the rest was not read")

    def add_text(self, text: str) -> None:
        if self.quiet or not text.strip():
            return
        room = self.limits.max_text_chars - self.chars
        if len(text) > room:
            self.hit_limit("max_text_chars", str(self.limits.max_text_chars))
            text = text[: max(room, 0)]
        self.texts.append(text)
        self.chars += len(text)


def parse_mail(raw: bytes, *, limits: ParseLimits = DEFAULT_LIMITS) -> ParsedMail:
    """Everything a person would read in ``raw``, decoded; never raises."""
    try:
        return _parse(raw, limits)
    except Exception as error:  # the parser must stay total: a crash becomes a defect
        return _fallback(raw, limits, error)


def _fallback(raw: object, limits: ParseLimits, error: Exception) -> ParsedMail:
    defect = f"parse: failed with {type(error).__name__}; only the headers were read"
    try:
        data = raw if isinstance(raw, bytes) else str(raw).encode("utf-8", "surrogateescape")
        head = _HEADER_END.split(data[: limits.max_header_bytes], maxsplit=1)[0]
        message = BytesParser(policy=compat32).parsebytes(head, headersonly=True)
        mail = _from_headers(message, _Reading(limits), "", None)
        return _replace_defects(mail, (*mail.defects, defect))
    except Exception:
        return ParsedMail(message_id=None, from_addr=None, subject="", body_text="", defects=(defect,), truncated=True)


def _replace_defects(mail: ParsedMail, defects: tuple[str, ...]) -> ParsedMail:
    return replace(mail, defects=defects, truncated=True)


def _parse(raw: bytes, limits: ParseLimits) -> ParsedMail:
    reading = _Reading(limits)
    data = _cap_headers(raw if isinstance(raw, bytes) else bytes(raw), reading)
    message = BytesParser(policy=compat32).parsebytes(data)
    _walk(message, 0, reading)
    body = "\n\n".join(text.strip("\n") for text in reading.texts)[: limits.max_text_chars]
    html = "\n".join(reading.html) if reading.html else None
    return _from_headers(message, reading, body, html)


def _cap_headers(raw: bytes, reading: _Reading) -> bytes:
    """Cut a header block longer than max_header_bytes at a line end; the body is kept."""
    limit = reading.limits.max_header_bytes
    match = _HEADER_END.search(raw, 0, limit + 4)
    if match is not None or len(raw) <= limit:
        return raw
    end = _HEADER_END.search(raw, limit)
    body = raw[end.start() :] if end else b""
    head = raw[:limit]
    head = head[: head.rfind(b"\n") + 1] or head
    reading.hit_limit("max_header_bytes", str(limit))
    return head.rstrip(b"\r\n") + (body or b"\n\n")


def _from_headers(message: Message, reading: _Reading, body: str, html: str | None) -> ParsedMail:
    headers = _decoded_headers(message, reading)
    first = {name: value for name, value in reversed(headers)}
    raw_first = {name.lower(): str(value) for name, value in reversed(list(message.raw_items()))}
    addresses = {name: _addresses(raw_first.get(name), name, reading) for name in ("from", "to", "cc", "reply-to", "sender")}
    date, date_defects = parse_date(first.get("date"))
    for text in date_defects:
        reading.defect(text)
    message_ids = parse_message_ids(raw_first.get("message-id"))
    if not message_ids:
        reading.defect("header: no Message-ID")
    if not addresses["from"]:
        reading.defect("header: no readable From address")
    return ParsedMail(
        message_id=message_ids[0] if message_ids else None,
        from_addr=addresses["from"][0] if addresses["from"] else None,
        subject=first.get("subject", "").strip(),
        body_text=body,
        reply_text=_reply_of(body, reading),
        to=addresses["to"], cc=addresses["cc"], reply_to=addresses["reply-to"],
        sender=addresses["sender"][0] if addresses["sender"] else None,
        date=date,
        in_reply_to=parse_message_ids(raw_first.get("in-reply-to")),
        references=parse_message_ids(raw_first.get("references"))[-reading.limits.max_references :],
        headers=tuple(headers), body_html=html, attachments=tuple(reading.attachments),
        defects=tuple(reading.defects), truncated=reading.truncated,
    )


def _decoded_headers(message: Message, reading: _Reading) -> list[tuple[str, str]]:
    headers: list[tuple[str, str]] = []
    for name, value in message.raw_items():
        text, defects = decode_header_value(str(value))
        for defect in defects:
            reading.defect(f"{name.lower()}: {defect}")
        headers.append((name.strip().lower(), text.strip()))
    for found in message.defects:
        reading.defect(f"mime: {type(found).__name__}")
    return headers


def _addresses(value: str | None, name: str, reading: _Reading) -> tuple[Address, ...]:
    found, defects = parse_addresses(value)
    for defect in defects:
        reading.defect(f"{name}: {defect}")
    return found


def _reply_of(body: str, reading: _Reading) -> str:
    try:
        return extract_reply(body)
    except Exception as error:  # a quote-stripping bug must not lose the mail: keep the whole body
        reading.defect(f"reply: quote stripping failed with {type(error).__name__}")
        return body


# --- the MIME tree ---------------------------------------------------------------------------------


def _walk(part: Message, depth: int, reading: _Reading) -> None:
    reading.parts += 1
    if reading.parts > reading.limits.max_parts:
        reading.hit_limit("max_parts", str(reading.limits.max_parts))
        return
    if depth > reading.limits.max_depth:
        reading.hit_limit("max_depth", str(reading.limits.max_depth))
        return
    if depth:
        for defect in part.defects:
            reading.defect(f"mime: {type(defect).__name__}")
    ctype, params, _ = parse_content_header(raw_header(part, "content-type"))
    raw_payload = part.get_payload()
    payload = [child for child in raw_payload if isinstance(child, Message)] if isinstance(raw_payload, list) else None
    if "/" not in ctype or (ctype.startswith("multipart/") and not isinstance(payload, list)):
        if ctype:
            reading.defect(f"mime: {ctype!r} without structure read as text/plain")
        ctype = "text/plain"
    if ctype == "message/rfc822":
        _walk_forward(part, payload, depth, reading)
    elif payload is not None and ctype.startswith("message/"):
        _attach_message_part(part, ctype, payload, reading)
    elif payload is not None and ctype == "multipart/alternative":
        _walk_alternative(payload, depth, reading)
    elif payload is not None:
        for child in payload:
            _walk(child, depth + 1, reading)
    else:
        _leaf(part, ctype, params, reading)


def _walk_alternative(children: list[Message], depth: int, reading: _Reading) -> None:
    """Read the plain alternative; if it is empty, the richest other one; the rest only for files."""
    kinds = [_leaf_type(child) for child in children]
    plain = children[kinds.index("text/plain")] if "text/plain" in kinds else None
    before = reading.chars
    if plain is not None:
        _walk(plain, depth + 1, reading)
    others = [child for child in children if child is not plain]
    rich = [child for child, kind in zip(children, kinds, strict=True) if kind in ("text/html", "multipart")]
    candidates = rich or others
    chosen = candidates[-1] if candidates and reading.chars == before else None
    for child in others:
        reading.quiet += child is not chosen
        _walk(child, depth + 1, reading)
        reading.quiet -= child is not chosen


def _leaf_type(part: Message) -> str:
    if part.is_multipart():
        return "multipart"
    ctype, _, _ = parse_content_header(raw_header(part, "content-type"))
    disposition, _, _ = parse_content_header(raw_header(part, "content-disposition"))
    return "attachment" if disposition == "attachment" else ctype or "text/plain"


def raw_header(part: Message, name: str) -> str | None:
    """The first value of a header as parsed (raw 8-bit kept as surrogates), not a compat32 Header object."""
    for key, value in part.raw_items():
        if key.lower() == name:
            return str(value)
    return None


def _walk_forward(part: Message, payload: list[Message] | None, depth: int, reading: _Reading) -> None:
    """A forwarded mail: its headers after a separator line, then its text and files."""
    inner = payload[0] if payload else None
    if inner is None:
        data = part.get_payload(decode=True)
        inner = BytesParser(policy=compat32).parsebytes(data if isinstance(data, bytes) else b"")
    lines = [FORWARD_SEPARATOR]
    for name in ("From", "Date", "Subject", "To"):
        value = raw_header(inner, name.lower())
        if value is not None:
            lines.append(f"{name}: {decode_header_value(value)[0].strip()}")
    reading.add_text("\n".join(lines))
    _keep_message_file(part, inner, reading)
    _walk(inner, depth + 1, reading)


def _keep_message_file(part: Message, inner: Message, reading: _Reading) -> None:
    """The forwarded or returned mail itself, as a .eml file (bounce readers and agents want it)."""
    _, dparams, _ = parse_content_header(raw_header(part, "content-disposition"))
    _, params, _ = parse_content_header(raw_header(part, "content-type"))
    try:
        data = inner.as_bytes(policy=compat32)
    except Exception as error:  # re-serialising a broken inner mail may fail; its text is still read
        reading.defect(f"mime: forwarded mail could not be kept as a file ({type(error).__name__})")
        return
    name = _clean_filename(dparams.get("filename") or params.get("name") or "")
    reading.attachments.append(Attachment(filename=name, content_type="message/rfc822", size=len(data), data=data))


def _attach_message_part(part: Message, ctype: str, payload: list[Message], reading: _Reading) -> None:
    """message/delivery-status and friends: kept as a file of their header blocks."""
    try:
        data = b"\n".join(block.as_bytes(policy=compat32) for block in payload)
    except Exception as error:  # serialising odd header blocks can fail; keep the mail
        reading.defect(f"mime: {ctype} part could not be kept ({type(error).__name__})")
        return
    reading.attachments.append(Attachment(filename="", content_type=ctype, size=len(data), data=data))


def _leaf(part: Message, ctype: str, params: dict[str, str], reading: _Reading) -> None:
    disposition, dparams, defects = parse_content_header(raw_header(part, "content-disposition"))
    for defect in defects:
        reading.defect(f"content-disposition: {defect}")
    filename = _clean_filename(dparams.get("filename") or params.get("name") or "")
    data = _payload_bytes(part)
    if ctype in _TNEF_TYPES or filename.lower() == "winmail.dat":
        _read_winmail(data, filename or "winmail.dat", ctype, reading)
        return
    if ctype in _TEXT_TYPES and disposition != "attachment" and not filename:
        _read_text(data, ctype, params, reading)
        return
    content_id = (raw_header(part, "content-id") or "").strip().strip("<>").strip() or None
    inline = disposition == "inline" or (not disposition and content_id is not None)
    reading.attachments.append(Attachment(
        filename=filename, content_type=ctype, size=len(data), content_id=content_id, inline=inline, data=data,
    ))


def _payload_bytes(part: Message) -> bytes:
    data = part.get_payload(decode=True)
    return data if isinstance(data, bytes) else b""


def _clean_filename(name: str) -> str:
    """The last path element, without control or format characters (C:\\Users\\..\\a.doc → a.doc).

    Format characters (Unicode Cf) include U+202E, which shows ``invoice\u202egpj.exe`` as
    "invoiceexe.jpg"; a displayed name keeps none of them.
    """
    name = "".join(c for c in re.sub(r"[\x00-\x1f\x7f]", "", name) if unicodedata.category(c) != "Cf")
    return re.split(r"[\\/]", name.strip())[-1].strip()


def _read_text(data: bytes, ctype: str, params: dict[str, str], reading: _Reading) -> None:
    text, defect = decode_bytes(data, params.get("charset"))
    if defect:
        reading.defect(f"{ctype}: {defect}")
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")
    if ctype == "text/html":
        if not reading.html:
            reading.html.append(text)
        if not reading.quiet:
            reading.add_text(html_to_text(text, limit=reading.limits.max_text_chars - reading.chars + 1))
        return
    if params.get("format", "").lower() == "flowed":
        text = unflow(text, delsp=params.get("delsp", "").lower() == "yes")
    reading.add_text(text)


def unflow(text: str, *, delsp: bool = False) -> str:
    """Join the soft line breaks of RFC 3676 format=flowed text (signature separator kept)."""
    lines: list[str] = []
    joining = False
    for line in text.split("\n"):
        line = line[1:] if line.startswith(" ") else line  # space-stuffing
        if joining:
            lines[-1] += line
        else:
            lines.append(line)
        joining = line.endswith(" ") and line != "-- " and not line.startswith(">")
        if joining and delsp:
            lines[-1] = lines[-1][:-1]
    return "\n".join(lines)


def _read_winmail(data: bytes, filename: str, ctype: str, reading: _Reading) -> None:
    try:
        content = read_tnef(data)
    except (TnefError, ValueError, IndexError) as error:
        reading.defect(f"tnef: {filename} could not be read ({error}); kept as an attachment")
        reading.attachments.append(Attachment(filename=filename, content_type=ctype, size=len(data), data=data))
        return
    if content.body_text.strip():
        reading.add_text(content.body_text.replace("\r\n", "\n"))
    elif content.body_html:
        reading.html.append(content.body_html)
        reading.add_text(html_to_text(content.body_html, limit=reading.limits.max_text_chars))
    for item in content.attachments:
        reading.parts += 1
        if reading.parts > reading.limits.max_parts:
            reading.hit_limit("max_parts", str(reading.limits.max_parts))
            return
        reading.attachments.append(Attachment(
            filename=_clean_filename(item.filename), content_type=item.content_type, size=len(item.data),
            content_id=item.content_id, inline=False, data=item.data,
        ))
