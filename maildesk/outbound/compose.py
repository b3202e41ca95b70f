"""Build the bytes of an outgoing mail, safely.

Pure: values in, bytes out.  No header can be injected (CR/LF and other
control characters are removed from every value we put in a header), Chinese
is RFC 2047-encoded by the email package, and every automatic mail carries the
markers that stop mail loops (RFC 3834 ``Auto-Submitted``, Exchange's
``X-Auto-Response-Suppress``, ``X-Loop``).  Our Message-IDs carry an HMAC so
a mail of ours that comes back is recognised.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime

from maildesk.domain import OutboxMessage
from maildesk.outbound.render import Rendered

_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f\u2028\u2029\u0085]+")
_ID_SAFE_RE = re.compile(r"[^A-Za-z0-9.\-]")
_SIG_LEN = 16


def clean_header_value(value: str, limit: int = 900) -> str:
    """A header value with every control character (CR, LF, NUL…) turned into a space."""
    return " ".join(_CONTROL_RE.sub(" ", value).split())[:limit]


def make_message_id(secret: str, kind: str, ticket: str, key: str, domain: str) -> str:
    """``md.<kind>.<ticket>.<nonce>.<sig>@domain`` (no brackets); deterministic per key."""
    nonce = hashlib.sha256(key.encode()).hexdigest()[:12]
    local = f"md.{_ID_SAFE_RE.sub('', kind)}.{_ID_SAFE_RE.sub('', ticket)}.{nonce}"
    sig = hmac.new(secret.encode(), local.encode(), hashlib.sha256).hexdigest()[:_SIG_LEN]
    return f"{local}.{sig}@{_ID_SAFE_RE.sub('', domain) or 'localhost'}"


def is_own_message_id(secret: str, message_id: str) -> bool:
    """True when ``message_id`` was made by ``make_message_id`` with this secret."""
    local = message_id.strip("<>").rpartition("@")[0]
    body, _, sig = local.rpartition(".")
    if not body.startswith("md.") or len(sig) != _SIG_LEN:
        return False
    expected = hmac.new(secret.encode(), body.encode(), hashlib.sha256).hexdigest()[:_SIG_LEN]
    return hmac.compare_digest(expected, sig)


@dataclass(frozen=True)
class Envelope:
    """Who a mail is from and to, and where it sits in a thread."""

    from_addr: str
    from_name: str
    to: Sequence[tuple[str, str]]  # (name, address)
    bounce_addr: str
    reply_to: str | None = None
    in_reply_to: str | None = None
    references: Sequence[str] = ()
    automatic: bool = True
    loop_marker: str | None = None


def safe_address(address: str) -> str | None:
    """The address if it can go on the wire as it is, else None.

    ``=?`` is refused too: a local part that looks like an RFC 2047 encoded-word is legal, but some
    readers (aiosmtpd's RCPT parser among them) decode it into whatever it hides, CR/LF included.
    """
    address = address.strip()
    if not address or _CONTROL_RE.search(address) or any(c in address for c in " <>,;\"()[]\\") \
            or "=?" in address:
        return None
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain or len(address) > 254:
        return None
    return address


def compose(
    rendered: Rendered, envelope: Envelope, *, kind: str, dedup_key: str, message_id: str, date_at: datetime
) -> OutboxMessage:
    """The complete outgoing mail as an outbox value."""
    recipients = tuple(a for a in (safe_address(addr) for _, addr in envelope.to) if a)
    if not recipients:
        raise ValueError(f"no deliverable recipient for {kind} {dedup_key}")
    fields = [
        _address_field("From", [(envelope.from_name, envelope.from_addr)]),
        _address_field("To", [(name, addr) for name, addr in envelope.to if safe_address(addr)]),
        _text_field("Subject", clean_header_value(rendered.subject)),
        _text_field("Date", format_datetime(date_at)),
        _text_field("Message-ID", f"<{_clean_id(message_id)}>"),
    ]
    if envelope.reply_to:
        fields.append(_reply_to_field(envelope.reply_to))
    if envelope.in_reply_to:
        fields.append(_text_field("In-Reply-To", f"<{_clean_id(envelope.in_reply_to)}>"))
    refs = [_clean_id(r) for r in envelope.references if _clean_id(r)][-20:]
    if refs:
        fields.append(_text_field("References", " ".join(f"<{r}>" for r in refs)))
    if envelope.automatic:
        fields.append(_text_field("Auto-Submitted",
                                  "auto-replied" if kind in ("ack", "oversize_notice") else "auto-generated"))
        fields.append("X-Auto-Response-Suppress: All\r\n")
        fields.append(_text_field("Precedence", "auto_reply" if kind == "ack" else "bulk"))
    if envelope.loop_marker:
        fields.append(_text_field("X-Loop", clean_header_value(envelope.loop_marker)))
    fields.append(_text_field("X-Maildesk-Kind", clean_header_value(kind)))
    return OutboxMessage(
        kind=kind,
        dedup_key=dedup_key,
        message_id=message_id,
        mail_from=safe_address(envelope.bounce_addr) or "",
        recipients=recipients,
        raw="".join(fields).encode("ascii") + _mime_body(rendered, message_id),
    )


# --- the wire format --------------------------------------------------------------------------------
# Written by hand rather than with ``email.message.EmailMessage``: its ``policy.default`` header
# parsing and folding took most of the CPU of an acknowledgment.  Every header is pure ASCII, folded
# at spaces to 78 columns (a word never splits; no line reaches 998), and any value with a non-ASCII
# character or an ``=?`` is sent as RFC 2047 base64 encoded-words, so a reader decodes exactly the
# cleaned text we had — never a second time (a literal encoded-word in a requester's subject stays text).

_MAX_LINE = 78
_WORD_OVERHEAD = len("=?utf-8?b??=")
_SPECIALS = frozenset('()<>[]:;@\\,."')


def _needs_encoding(text: str) -> bool:
    return "=?" in text or not (text.isascii() and text.isprintable())


def _encoded_words(text: str, first_room: int) -> list[str]:
    """``text`` as base64 encoded-words of whole characters; the first fits ``first_room`` columns, the rest 77."""
    words: list[str] = []
    chunk: list[str] = []
    size, room = 0, max(first_room, 24)
    for char in text:
        n = len(char.encode("utf-8"))
        if chunk and _WORD_OVERHEAD + 4 * -(-(size + n) // 3) > room:
            words.append(_encoded_word("".join(chunk)))
            chunk, size, room = [], 0, _MAX_LINE - 1
        chunk.append(char)
        size += n
    if chunk or not words:
        words.append(_encoded_word("".join(chunk)))
    return words


def _encoded_word(text: str) -> str:
    return f"=?utf-8?b?{base64.b64encode(text.encode('utf-8')).decode('ascii')}?="


def _fold(name: str, tokens: Sequence[str]) -> str:
    """``Name: t1 t2 …`` with a CRLF and a space before a token that would pass 78 columns."""
    line, lines = f"{name}:", []
    for token in tokens:
        if len(line) + 1 + len(token) > _MAX_LINE and line.strip() != f"{name}:":
            lines.append(line)
            line = ""
        line = f"{line} {token}"
    lines.append(line)
    return "\r\n".join(lines) + "\r\n"


def _text_field(name: str, value: str) -> str:
    """An unstructured field (or one we treat as such): ASCII words, or encoded-words when needed."""
    if _needs_encoding(value):
        return f"{name}: " + "\r\n ".join(_encoded_words(value, _MAX_LINE - len(name) - 2)) + "\r\n"
    return _fold(name, value.split(" "))


def _address_field(name: str, people: Sequence[tuple[str, str]]) -> str:
    tokens: list[str] = []
    for index, (display, addr) in enumerate(people):
        person = _address_tokens(clean_header_value(display, 200), addr)
        if index < len(people) - 1:
            person[-1] += ","
        tokens.extend(person)
    return _fold(name, tokens)


def _address_tokens(display: str, addr: str) -> list[str]:
    """A mailbox as foldable tokens: ``addr``, ``Name <addr>``, ``"Q.\\"uoted" <addr>``, ``=?…?= <addr>``."""
    local, _, domain = addr.rpartition("@")
    spec = "@".join(_encoded_word(p) if _needs_encoding(p) else p for p in (local, domain))
    if not display:
        return [spec]
    if _needs_encoding(display):
        words = _encoded_words(display, _MAX_LINE - 6)
    elif _SPECIALS.intersection(display):
        words = ['"' + display.replace("\\", "\\\\").replace('"', '\\"') + '"']
    else:
        words = display.split(" ")
    return [*words, f"<{spec}>"]


def _reply_to_field(reply_to: str) -> str:
    address = safe_address(reply_to)
    if address is None:
        return _text_field("Reply-To", clean_header_value(reply_to))
    return _address_field("Reply-To", [("", address)])


def _mime_body(rendered: Rendered, message_id: str) -> bytes:
    """The MIME headers and body: text/plain, or multipart/alternative with the HTML, base64 UTF-8."""
    if rendered.html is None:
        return b"Content-Type: text/plain; charset=\"utf-8\"\r\nContent-Transfer-Encoding: base64\r\n" \
            b"MIME-Version: 1.0\r\n\r\n" + _base64_text(rendered.text)
    # Base64 lines never hold a '-', so no part can contain a delimiter line; the boundary may be fixed.
    boundary = f"=_md_{hashlib.sha256(message_id.encode('utf-8', 'replace')).hexdigest()[:24]}".encode()
    out = [b"MIME-Version: 1.0\r\nContent-Type: multipart/alternative;\r\n boundary=\"" + boundary + b"\"\r\n"]
    for subtype, text in ((b"plain", rendered.text), (b"html", rendered.html)):
        out.append(b"\r\n--" + boundary + b"\r\nContent-Type: text/" + subtype + b"; charset=\"utf-8\"\r\n"
                   b"Content-Transfer-Encoding: base64\r\n\r\n" + _base64_text(text))
    out.append(b"\r\n--" + boundary + b"--\r\n")
    return b"".join(out)


def _base64_text(text: str) -> bytes:
    """What ``set_content(text, cte="base64")`` sends: lines ended by CRLF, base64 in 76-column lines."""
    body = b"\r\n".join(text.encode("utf-8").splitlines()) + b"\r\n"
    encoded = base64.b64encode(body)
    return b"".join(encoded[i:i + 76] + b"\r\n" for i in range(0, len(encoded), 76))


def _clean_id(message_id: str) -> str:
    return re.sub(r"[\s<>\x00-\x1f\x7f]", "", message_id)[:900]
