"""Build the bytes of an outgoing mail, safely.

Pure: values in, bytes out.  No header can be injected (CR/LF and other
control characters are removed from every value we put in a header), Chinese
is RFC 2047-encoded by the email package, and every automatic mail carries the
markers that stop mail loops (RFC 3834 ``Auto-Submitted``, Exchange's
``X-Auto-Response-Suppress``, ``X-Loop``).  Our Message-IDs carry an HMAC so
a mail of ours that comes back is recognised.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email.headerregistry import Address as EmailAddress
from email.message import EmailMessage
from email.policy import SMTP
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
    """The address if it can go on the wire as it is, else None."""
    address = address.strip()
    if not address or _CONTROL_RE.search(address) or any(c in address for c in " <>,;\"()[]\\"):
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
    msg = EmailMessage(policy=SMTP)
    msg["From"] = _address(envelope.from_name, envelope.from_addr)
    msg["To"] = ", ".join(
        str(_address(name, addr)) for name, addr in envelope.to if safe_address(addr)
    )
    msg["Subject"] = clean_header_value(rendered.subject)
    msg["Date"] = format_datetime(date_at)
    msg["Message-ID"] = f"<{message_id}>"
    if envelope.reply_to:
        msg["Reply-To"] = envelope.reply_to
    if envelope.in_reply_to:
        msg["In-Reply-To"] = f"<{_clean_id(envelope.in_reply_to)}>"
    refs = [_clean_id(r) for r in envelope.references if _clean_id(r)][-20:]
    if refs:
        msg["References"] = " ".join(f"<{r}>" for r in refs)
    if envelope.automatic:
        msg["Auto-Submitted"] = "auto-replied" if kind in ("ack", "oversize_notice") else "auto-generated"
        msg["X-Auto-Response-Suppress"] = "All"
        msg["Precedence"] = "auto_reply" if kind == "ack" else "bulk"
    if envelope.loop_marker:
        msg["X-Loop"] = clean_header_value(envelope.loop_marker)
    msg["X-Maildesk-Kind"] = clean_header_value(kind)
    msg.set_content(rendered.text, subtype="plain", charset="utf-8", cte="base64")
    if rendered.html is not None:
        msg.add_alternative(rendered.html, subtype="html", charset="utf-8", cte="base64")
    return OutboxMessage(
        kind=kind,
        dedup_key=dedup_key,
        message_id=message_id,
        mail_from=safe_address(envelope.bounce_addr) or "",
        recipients=recipients,
        raw=msg.as_bytes(policy=SMTP),
    )


def _address(name: str, addr: str) -> EmailAddress:
    local, _, domain = addr.rpartition("@")
    return EmailAddress(display_name=clean_header_value(name, 200), username=local, domain=domain)


def _clean_id(message_id: str) -> str:
    return re.sub(r"[\s<>\x00-\x1f\x7f]", "", message_id)[:900]
