"""Parsing (scenario 6): mails per second of maildesk's pure reading stages on the corpus, in process.

``parse_mail`` (MIME tree, headers, charsets, HTML to text, and ``quotes.extract_reply`` for the reply
text) followed by ``thread.lookup_keys`` and ``thread.decide``; next to the standard library alone
(``message_from_bytes`` with compat32, and with ``policy.default``) on the same bytes.
"""

from __future__ import annotations

import email
import email.policy
import time
from collections.abc import Callable

from bench.context import Run, log
from bench.corpus import generate
from maildesk.ingest import thread
from maildesk.ingest.parse import parse_mail


def _maildesk(raw: bytes) -> object:
    mail = parse_mail(raw)
    thread.lookup_keys(mail)
    return thread.decide(mail, (), sender_is_agent=False)


def _compat32(raw: bytes) -> object:
    return email.message_from_bytes(raw)


def _policy_default(raw: bytes) -> object:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    return message.get_body(("plain", "html"))


def _rate(func: Callable[[bytes], object], raws: list[bytes]) -> float:
    started = time.perf_counter()
    for raw in raws:
        func(raw)
    return round(len(raws) / (time.perf_counter() - started), 1)


def run(ctx: Run) -> dict[str, object]:
    raws = [mail.raw for mail in generate(ctx.sizes.parsing, ticket_day=ctx.ticket_day)]
    _rate(_maildesk, raws[:200])  # warm the regex and codec caches
    result = {
        "mails": len(raws),
        "maildesk_per_s": _rate(_maildesk, raws),
        "compat32_per_s": _rate(_compat32, raws),
        "policy_default_per_s": _rate(_policy_default, raws),
    }
    log.info("parsing: %s", result)
    return result
