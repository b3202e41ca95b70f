"""H15: a mail over the size limit is not parsed, is kept (raw or its headers), and its sender is told once a day.

The default limit is 25 MB (``[desk] max_mail_size``); ``[desk] oversize = "headers"`` keeps only the header
block and leaves the mail on the server.  Mails under the limit in the same batch flow as usual.
"""

from __future__ import annotations

import os

from sqlalchemy import select

from maildesk.store.models import Event, Message, Outbox, RawMail, Ticket
from tests.integration.desk_helpers import acks, count, request_mail

from . import bombs
from .desk import cycle, make_desk, wait_for_mails

OVERSIZE = 26 * bombs.ONE_MB


def big_mail(index: int, size: int, sender: str = "big.sender@corp.test", extra: bytes = b"") -> bytes:
    raw = bombs.with_attachment(f"oversize-{index}", "disk.img", "application/octet-stream",
                                os.urandom(size * 3 // 4 + 1024))
    raw = raw.replace(f"bomb-oversize-{index}@corp.test>".encode(), f"big-{index}@corp.test>".encode(), 1) \
        .replace(b"From: bomb-oversize-%d@corp.test" % index, b"From: " + sender.encode(), 1)
    return extra + raw if extra else raw


def _told(sink, address: str) -> list:  # noqa: ANN001
    return [m for m in sink.received if address in m.rcpt_tos]


def test_a_mail_over_25_mb_is_kept_raw_unparsed_and_the_sender_is_told(tmp_path, imap_account, smtp_sink,
                                                                      monkeypatch) -> None:  # noqa: ANN001
    desk = make_desk(tmp_path, imap_account, smtp_sink, monkeypatch)
    mails = [big_mail(i, OVERSIZE) for i in range(2)]
    assert all(len(m) > 25 * bombs.ONE_MB for m in mails)
    imap_account.append_many(mails)
    assert cycle(desk).errors == (None,)
    with desk.sessions() as session:
        rows = session.scalars(select(RawMail)).all()
        assert [(r.status, r.size == len(r.raw)) for r in rows] == [("quarantined", True)] * 2  # kept whole
        assert all(r.reason.startswith("oversize: 26.") and "25.0 MB limit" in r.reason for r in rows)
        assert session.scalar(select(Event).where(Event.kind == "mail_oversize")) is not None
    wait_for_mails(smtp_sink, 1, timeout=5)
    told = _told(smtp_sink, "big.sender@corp.test")
    assert count(desk.sessions, Ticket) == 0, "an oversize mail must not be parsed into a ticket"
    assert count(desk.sessions, Message) == 0
    assert len(told) == 1, "one notice per sender per day"
    notice = told[0].message()
    assert "邮件过大" in notice["Subject"] and "26." in notice.get_body(("plain",)).get_content()
    assert notice["Auto-Submitted"] == "auto-replied"


def test_ten_oversize_mails_from_one_sender_get_one_notice_and_the_small_ones_flow(
        tmp_path, imap_account, smtp_sink, monkeypatch) -> None:  # noqa: ANN001
    desk = make_desk(tmp_path, imap_account, smtp_sink, monkeypatch, desk={"max_mail_size": "1MB"})
    small = [request_mail(f"user{i}@corp.test", f"打印机故障 {i}", "三楼打印机卡纸")[0] for i in range(3)]
    big = [big_mail(i, 2 * bombs.ONE_MB) for i in range(10)]
    other = big_mail(99, 2 * bombs.ONE_MB, sender="other@corp.test")
    imap_account.append_many([small[0], *big[:5], small[1], *big[5:], other, small[2]])
    assert cycle(desk).errors == (None,)
    cycle(desk)  # a second turn tells nobody again
    wait_for_mails(smtp_sink, 5, timeout=10)
    assert count(desk.sessions, RawMail, RawMail.status == "quarantined") == 11
    assert count(desk.sessions, Ticket) == 3
    assert len(acks(smtp_sink)) == 3
    assert len(_told(smtp_sink, "big.sender@corp.test")) == 1
    assert len(_told(smtp_sink, "other@corp.test")) == 1
    with desk.sessions() as session:
        keys = session.scalars(select(Outbox.dedup_key).where(Outbox.kind == "oversize_notice")).all()
        assert sorted(k.split(":")[1] for k in keys) == ["big.sender@corp.test", "other@corp.test"]
        told_events = session.scalars(select(Event.data).where(Event.kind == "mail_oversize")).all()
        assert sorted(bool(d.get("sender_told")) for d in told_events) == [False] * 9 + [True] * 2


def test_headers_mode_keeps_only_the_headers_and_notes_the_requesters_ticket(tmp_path, imap_account, smtp_sink,
                                                                           monkeypatch) -> None:  # noqa: ANN001
    desk = make_desk(tmp_path, imap_account, smtp_sink, monkeypatch,
                     desk={"max_mail_size": "1MB", "oversize": "headers"})
    request, request_id = request_mail("big.sender@corp.test", "服务器日志异常", "日志见后续邮件")
    imap_account.append(request)
    cycle(desk)
    with desk.sessions() as session:
        ticket = session.scalars(select(Ticket)).one()
    reply = big_mail(1, 3 * bombs.ONE_MB, extra=f"In-Reply-To: <{request_id}>\r\n".encode())
    imap_account.append(reply)
    assert cycle(desk).errors == (None,)
    with desk.sessions() as session:
        row = session.scalars(select(RawMail).where(RawMail.status == "quarantined")).one()
        assert row.size > 3 * bombs.ONE_MB and len(row.raw) < 4096, "only the header block is stored"
        assert row.raw.rstrip().endswith(b"MIME-Version: 1.0") or b"Content-Type:" in row.raw
        assert "only its headers were kept" in row.reason
        event = session.scalars(select(Event).where(Event.kind == "mail_oversize")).one()
        assert event.ticket_id == ticket.id, "the requester's ticket shows that a mail was not taken in"
    assert count(desk.sessions, Message) == 1  # the request only
    # The mail itself is still on the server, in the done folder.
    assert imap_account.list_uids("INBOX") == []
    wait_for_mails(smtp_sink, 2, timeout=10)
    assert len(_told(smtp_sink, "big.sender@corp.test")) == 2  # the ack of the request, and the one notice


def test_an_oversize_auto_reply_or_bounce_gets_no_notice(tmp_path, imap_account, smtp_sink,
                                                         monkeypatch) -> None:  # noqa: ANN001
    desk = make_desk(tmp_path, imap_account, smtp_sink, monkeypatch, desk={"max_mail_size": "1MB"})
    imap_account.append(big_mail(1, 2 * bombs.ONE_MB, extra=b"Auto-Submitted: auto-replied\r\n"))
    assert cycle(desk).errors == (None,)
    assert count(desk.sessions, RawMail, RawMail.status == "quarantined") == 1
    assert smtp_sink.received == []
