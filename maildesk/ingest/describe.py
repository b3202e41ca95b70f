"""Describe one raw mail as the JSON object printed by ``maildesk parse FILE --json``.

Pure: composes ``parse``, ``thread.extract_ticket_ref`` and ``loops.assess``;
the keys are a stable contract for operators and the corpus tests.
"""

from __future__ import annotations

from typing import Any

from maildesk.domain import Automatic, ParsedMail
from maildesk.ingest.loops import assess
from maildesk.ingest.parse import parse_mail
from maildesk.ingest.thread import extract_ticket_ref

DESCRIBE_KEYS = (
    "message_id", "from", "from_name", "to", "cc", "subject", "date", "ticket_ref", "in_reply_to",
    "references", "body_text", "reply_text", "attachments", "auto_submitted", "auto_kind", "defects",
)


def describe_parsed(parsed: ParsedMail) -> dict[str, Any]:
    """The describe object of an already parsed mail."""
    verdict = assess(parsed)
    automatic = isinstance(verdict, Automatic)
    return {
        "message_id": parsed.message_id,
        "from": parsed.from_addr.addr if parsed.from_addr else None,
        "from_name": parsed.from_addr.name if parsed.from_addr else None,
        "to": [address.addr for address in parsed.to],
        "cc": [address.addr for address in parsed.cc],
        "subject": parsed.subject,
        "date": parsed.date.isoformat() if parsed.date else None,
        "ticket_ref": extract_ticket_ref(parsed.subject),
        "in_reply_to": parsed.in_reply_to[0] if parsed.in_reply_to else None,
        "references": list(parsed.references),
        "body_text": parsed.body_text,
        "reply_text": parsed.reply_text,
        "attachments": [
            {"filename": item.filename, "content_type": item.content_type, "size": item.size}
            for item in parsed.attachments
        ],
        "auto_submitted": automatic,
        "auto_kind": verdict.kind.value if isinstance(verdict, Automatic) else None,
        "defects": list(parsed.defects),
    }


def describe_mail(raw: bytes) -> dict[str, Any]:
    """The JSON-ready description of ``raw``: addresses, ids, decoded text, files, loop verdict, defects."""
    return describe_parsed(parse_mail(raw))
