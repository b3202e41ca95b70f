"""H2 end to end: 62 XSS vectors in requester and agent mails, then every HTML document maildesk made is inert.

Ten requester mails go through the real desk (Dovecot → poll → ingest → tickets → outbox → aiosmtpd): each
carries every vector in its text body, and a share of them in its Subject (raw, RFC 2047 B and Q), its display
name (quoted string or encoded word), its attachment file names and — for most — an HTML body (alongside the
text, or HTML only).  The agent who got each new-ticket notice then answers three tickets through the personal
reply address: a text reply, an HTML-only reply and ``#状态 已解决`` with the vectors as the solution.  Then the
weekly report is computed over those tickets (as of 30 days later, so each one is a breach with its subject
shown), exported as the browser HTML page and queued and sent as the report mail.

Every HTML part the sink received and the exported page is parsed (``xss.find_active``): no element outside
the templates' own small set, no ``on*`` attribute, no URL with an active scheme, no active CSS, no comment.
So that the check cannot pass vacuously, each kind must also show user text (``alert('x``) as plain text.

The quarantine listing (``maildesk quarantine list/show``) is text on a terminal, not HTML: nothing to parse.
A second test renders every HTML template in both locales with every user-facing value replaced by a vector.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.header import decode_header, make_header
from email.message import EmailMessage
from email.policy import default
from html.parser import HTMLParser
from typing import Any
from zoneinfo import ZoneInfo

import jinja2
import pytest
from sqlalchemy import select

from maildesk.daemon import template_environment
from maildesk.outbound.notices import Desk as WireDesk
from maildesk.outbound.notifier import SECRET_NAME
from maildesk.outbound.render import LOCALES, build_environment, render
from maildesk.reports.build import export_report, load_report, queue_report
from maildesk.reports.periods import between
from maildesk.store import queries
from maildesk.store.models import Ticket
from maildesk.store.session import transaction
from tests.integration.desk_helpers import ROOT

from .desk import SUPPORT, cycle, kind_of, make_desk
from .xss import SHORT_VECTORS, VECTORS, encoded_word, find_active

MAILS = 10
PRINTER = "财务部三楼打印机一直卡纸，无法打印。"
MARK = "alert('x"  # every vector calls alert('xN'): seen as text, user input reached the document


def _quoted(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _requester_mail(i: int) -> bytes:
    """Mail ``i``: its share of vectors in Subject, name and file names; all of them in the body."""
    subject_vectors, name_vectors = VECTORS[i::MAILS], SHORT_VECTORS[i::MAILS]
    if i % 3 == 0:
        subject = "打印机 " + " ".join(subject_vectors)
    else:
        subject = "打印机 " + " ".join(encoded_word(v, "b" if i % 3 == 1 else "q") for v in subject_vectors)
    name = " ".join(name_vectors)
    display = _quoted(name) if i % 2 == 0 else encoded_word(name, "q" if i % 4 == 1 else "b")
    text = PRINTER + "\n" + "\n".join(VECTORS) + "\n"
    html = "<html><body><p>" + PRINTER + "</p>" + "<br>".join(VECTORS) + "</body></html>"
    msg = EmailMessage(policy=default)
    if i % 4 == 1:
        msg.set_content(html, subtype="html")  # HTML only: the desk converts it to text itself
    else:
        msg.set_content(text)
        if i % 4 != 3:
            msg.add_alternative(html, subtype="html")
    for k, filename in enumerate(name_vectors):
        msg.add_attachment(f"attachment {k}".encode(), maintype="application", subtype="octet-stream",
                           filename=filename)
    head = (f"From: {display} <user{i}@corp.test>\r\nTo: {SUPPORT}\r\nSubject: {subject}\r\n"
            f"Message-ID: <h2-{i}@corp.test>\r\nDate: Mon, 23 Nov 2026 10:00:00 +0800\r\n")
    body = msg.as_bytes(policy=default.clone(linesep="\r\n"))
    return head.encode("utf-8") + body


def _agent_mail(agent: str, reply_to: str, number: str, body: str, *, html: bool = False) -> bytes:
    msg = EmailMessage(policy=default)
    msg["From"] = f"Agent <{agent}>"
    msg["To"] = reply_to
    msg["Subject"] = f"回复: 【技术支持】{number} 打印机"
    msg["Message-ID"] = f"<agent-{number}-{len(body)}@example.com>"
    msg.set_content(body, subtype="html" if html else "plain")
    return msg.as_bytes()


def _html_parts(raw: bytes) -> list[str]:
    return [part.get_content() for part in message_from_bytes(raw, policy=default).walk()
            if part.get_content_type() == "text/html"]


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.text: list[str] = []

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _visible_text(html: str) -> str:
    parser = _Text()
    parser.feed(html)
    parser.close()
    return "".join(parser.text)


def _check(documents: dict[str, list[str]]) -> dict[str, int]:
    """Fail with every active construct found; returns how many documents of each kind were read."""
    found = [f"{kind}: {problem}" for kind, docs in documents.items() for doc in docs for problem in find_active(doc)]
    assert found == [], "\n".join(found[:50])
    return {kind: len(docs) for kind, docs in documents.items()}


def _notices_by_ticket(sink: Any) -> dict[str, tuple[str, str]]:
    """Ticket number -> (agent address, personal reply address) from the new-ticket notices."""
    found = {}
    for mail in sink.received:
        if kind_of(mail) == "new_ticket_notice":
            msg = message_from_bytes(mail.raw, policy=default)
            number = next(w for w in str(make_header(decode_header(msg["Subject"]))).replace("】", " ").split()
                          if w.startswith("TS"))
            found.setdefault(number, (mail.rcpt_tos[0], str(msg["Reply-To"])))
    return found


def test_xss_vectors_from_mail_never_become_active_html(tmp_path, imap_account, smtp_sink, monkeypatch) -> None:  # noqa: ANN001
    desk = make_desk(tmp_path, imap_account, smtp_sink, monkeypatch)
    imap_account.append_many([_requester_mail(i) for i in range(MAILS)])
    first = cycle(desk)
    assert first.errors == (None,) and first.fetched == MAILS
    with desk.sessions() as session:
        numbers = sorted(session.scalars(select(Ticket.number)))
    assert len(numbers) == MAILS, numbers

    notices = _notices_by_ticket(smtp_sink)
    assert len(notices) >= 3, f"new-ticket notices went out for {sorted(notices)} only"
    text_reply, html_reply, resolved = sorted(notices)[:3]
    agent_mails = [
        _agent_mail(*notices[text_reply], text_reply, "您好，请看：\n" + "\n".join(VECTORS)),
        _agent_mail(*notices[html_reply], html_reply, "<p>您好</p>" + "<br>".join(VECTORS), html=True),
        _agent_mail(*notices[resolved], resolved, "#状态 已解决\n已处理：\n" + "\n".join(VECTORS)),
    ]
    imap_account.append_many(agent_mails)
    second = cycle(desk)
    assert second.errors == (None,) and second.fetched == len(agent_mails)

    zone = ZoneInfo(desk.settings.timezone)
    now_at = datetime.now(UTC)
    today = now_at.astimezone(zone).date()
    env = template_environment(desk.settings, ROOT)
    with transaction(desk.sessions) as session:
        wire = WireDesk(desk.settings.support_address, desk.settings.support_name, desk.settings.bounce_address,
                        desk.settings.message_id_domain, queries.get_or_create_secret(session, SECRET_NAME),
                        desk.settings.timezone, "en")
        report = load_report(session, between(today - timedelta(days=1), today + timedelta(days=1), zone),
                             now_at + timedelta(days=30), zone)
        queue_report(session, env, wire, report, ["boss@desk.test"], now_at, zone, "en")
    assert len(report.breaches) >= 1 and report.new == MAILS
    pages = {locale: export_report(env, wire, report, "html", zone, locale) for locale in LOCALES}
    desk.sender.send_due()

    documents: dict[str, list[str]] = defaultdict(list)
    for mail in smtp_sink.received:
        documents[kind_of(mail)].extend(_html_parts(mail.raw))
    for locale, page in pages.items():
        documents[f"report page {locale}"].append(page)
    counts = _check(documents)
    print("HTML documents checked:", counts)
    for kind in ("ack", "new_ticket_notice", "agent_reply", "resolution_notice", "report", "report page en"):
        assert counts.get(kind, 0) >= 1, f"no {kind} HTML was produced: {counts}"
        assert any(MARK in _visible_text(doc) for doc in documents[kind]), f"no user text reached {kind}"
    with desk.sessions() as session:  # quoted names holding <> keep their sender (see the test below)
        requesters = sorted(session.scalars(select(Ticket.requester_addr)))
    assert requesters == sorted(f"user{i}@corp.test" for i in range(MAILS))
    assert counts["ack"] == MAILS
    assert counts["agent_reply"] >= 2


def test_a_quoted_display_name_holding_angle_brackets_keeps_its_sender() -> None:
    from maildesk.ingest.headers import parse_addresses

    found, defects = parse_addresses('"<script>alert(1)</script>" <user0@corp.test>')
    assert [a.addr for a in found] == ["user0@corp.test"] and defects == []


# Every user-facing value of each template's sample context becomes a vector; enum values and the survey links
# stay as the code makes them (those are never user text).
from tests.unit.test_notification_templates import SAMPLES, TRUSTED_FIELDS  # noqa: E402


def _hostile(value: Any, vectors: list[str]) -> Any:
    if isinstance(value, str):
        vectors.append(vectors.pop(0))
        return vectors[-1]
    if isinstance(value, list):
        return [_hostile(v, vectors) for v in value]
    if isinstance(value, dict):
        return {k: v if k in TRUSTED_FIELDS or k == "survey" else _hostile(v, vectors) for k, v in value.items()}
    return value


@pytest.mark.parametrize("locale", LOCALES)
def test_every_html_template_keeps_every_vector_inert(locale: str) -> None:
    env = build_environment(jinja2.FileSystemLoader(str(ROOT / "templates")))
    vectors = list(VECTORS)
    documents: dict[str, list[str]] = defaultdict(list)
    for kind, sample in SAMPLES.items():
        for _ in range(len(VECTORS) // 8 + 1):  # enough rounds that every vector fills some field
            context = {"desk_name": vectors[0], "support_address": "support@example.com",
                       **_hostile(sample, vectors)}
            rendered = render(env, kind, locale, context)
            if rendered.html is not None:
                documents[kind].append(rendered.html)
    counts = _check(documents)
    assert len(counts) >= 15, counts
    for kind, docs in documents.items():
        assert any(MARK in _visible_text(doc) for doc in docs), f"no user text reached {kind}"
