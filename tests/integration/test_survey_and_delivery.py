"""Issue 5 acceptance against Dovecot and aiosmtpd: answering the survey, forged answers, SMTP retries."""

from __future__ import annotations

import re
from email import message_from_bytes
from email.header import decode_header, make_header
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path

from sqlalchemy import select

from maildesk.cli import load_settings
from maildesk.daemon import build_desk
from maildesk.store.models import Event, Outbox, Ticket

from .desk_helpers import SUPPORT, kind_of, request_mail, write_config


def _desk(tmp_path: Path, account, sink, monkeypatch):  # noqa: ANN001, ANN202
    monkeypatch.setenv("MAILDESK_TEST_IMAP_PASSWORD", account.password)
    config = write_config(tmp_path, imap_host=account.host, imap_port=account.port, imap_user=account.user,
                          smtp_host=sink.host, smtp_port=sink.port)
    settings, base = load_settings(str(config))
    return build_desk(settings, base)


def _cycle(desk) -> None:  # noqa: ANN001
    for poller in desk.pollers:
        assert poller.poll_once().error is None
    desk.runner.process_pending()
    desk.sender.send_due()


def _text(raw: bytes) -> str:
    part = next(p for p in message_from_bytes(raw).walk() if p.get_content_type() == "text/plain")
    return part.get_payload(decode=True).decode("utf-8")


def _resolved_ticket(desk, account, sink, requester: str) -> tuple[str, bytes]:  # noqa: ANN001
    """A printer ticket of ``requester`` resolved by its agent; returns (number, the resolution notice)."""
    account.append(request_mail(requester, "打印机无法打印", "打印机卡纸")[0])
    _cycle(desk)
    with desk.sessions() as session:
        ticket = session.scalars(select(Ticket).where(Ticket.requester_addr == requester)).one()
    notice = next(m for m in sink.received if kind_of(m) == "new_ticket_notice" and "hw1@example.com" in m.rcpt_tos
                  and ticket.number.encode() in m.raw)
    msg = EmailMessage()
    msg["From"], msg["To"] = "hw1@example.com", message_from_bytes(notice.raw)["Reply-To"]
    msg["Subject"], msg["Message-ID"] = f"Re: 【技术支持】{ticket.number}", make_msgid(domain="example.com")
    msg.set_content("#状态 已解决\n已更换硒鼓。")
    account.append(msg.as_bytes())
    _cycle(desk)
    resolution = next(m for m in sink.received if kind_of(m) == "resolution_notice" and requester in m.rcpt_tos)
    return ticket.number, resolution.raw


def _close(desk, number: str) -> None:  # noqa: ANN001
    """Close the ticket as the auto-close of the sweep does."""
    from maildesk.domain import TicketStatus
    from maildesk.tickets import service

    with desk.sessions() as session, session.begin():
        ticket = session.scalars(select(Ticket).where(Ticket.number == number)).one()
        service.change_status(session, ticket, TicketStatus.CLOSED, "maildesk", desk.clock.now(),
                              why="auto-close after 3 days without an answer")


def _reply_quoting(requester: str, notice: bytes, text: str) -> bytes:
    """A reply as a mail client writes it: new text on top, the notice quoted below."""
    original = message_from_bytes(notice)
    msg = EmailMessage()
    msg["From"], msg["To"] = requester, SUPPORT
    msg["Subject"] = "回复: " + str(make_header(decode_header(original["Subject"])))
    notice_id = "".join(original["Message-ID"].split())  # unfold
    msg["In-Reply-To"] = notice_id
    msg["References"] = notice_id
    msg["Message-ID"] = make_msgid(domain="corp.test")
    quoted = "\n".join("> " + line for line in _text(notice).splitlines())
    msg.set_content(f"{text}\n\n在 2026年11月23日，技术支持中心 写道：\n{quoted}\n")
    return msg.as_bytes()


def test_a_requester_rates_from_a_mail_client_and_the_rating_is_stored(tmp_path, imap_account, smtp_sink,
                                                                       monkeypatch) -> None:  # noqa: ANN001
    desk = _desk(tmp_path, imap_account, smtp_sink, monkeypatch)
    number, notice = _resolved_ticket(desk, imap_account, smtp_sink, "li.na@corp.test")
    imap_account.append(_reply_quoting("li.na@corp.test", notice, "非常满意，谢谢"))
    _cycle(desk)
    with desk.sessions() as session:
        ticket = session.scalars(select(Ticket).where(Ticket.number == number)).one()
    assert (ticket.satisfaction, ticket.status) == ("very-satisfied", "resolved")
    assert "谢谢" in (ticket.satisfaction_comment or "")
    assert [m.rcpt_tos for m in smtp_sink.received if kind_of(m) == "rating_thanks"] == [("li.na@corp.test",)]


def test_a_survey_answer_after_auto_close_rates_the_closed_ticket(tmp_path, imap_account, smtp_sink,
                                                                  monkeypatch) -> None:  # noqa: ANN001
    desk = _desk(tmp_path, imap_account, smtp_sink, monkeypatch)
    number, notice = _resolved_ticket(desk, imap_account, smtp_sink, "li.na@corp.test")
    _close(desk, number)
    imap_account.append(_reply_quoting("li.na@corp.test", notice, "一般，等得有点久"))
    _cycle(desk)
    with desk.sessions() as session:
        tickets = session.scalars(select(Ticket)).all()
    assert [(t.number, t.status, t.satisfaction) for t in tickets] == [(number, "closed", "neutral")]
    assert [m.rcpt_tos for m in smtp_sink.received if kind_of(m) == "rating_thanks"] == [("li.na@corp.test",)]
    assert not [m for m in smtp_sink.received if kind_of(m) == "ack" and m.rcpt_tos == ("li.na@corp.test",)][1:]


def test_a_not_solved_reply_quoting_the_notice_reopens_a_resolved_ticket(tmp_path, imap_account, smtp_sink,
                                                                        monkeypatch) -> None:  # noqa: ANN001
    desk = _desk(tmp_path, imap_account, smtp_sink, monkeypatch)
    number, notice = _resolved_ticket(desk, imap_account, smtp_sink, "li.na@corp.test")
    imap_account.append(_reply_quoting("li.na@corp.test", notice, "还是没解决，今天又卡纸了"))
    _cycle(desk)
    with desk.sessions() as session:
        ticket = session.scalars(select(Ticket).where(Ticket.number == number)).one()
    assert (ticket.status, ticket.satisfaction) == ("open", None), "the quoted survey line is no rating"


def test_a_not_solved_reply_after_auto_close_opens_a_follow_up_ticket(tmp_path, imap_account, smtp_sink,
                                                                      monkeypatch) -> None:  # noqa: ANN001
    desk = _desk(tmp_path, imap_account, smtp_sink, monkeypatch)
    number, notice = _resolved_ticket(desk, imap_account, smtp_sink, "li.na@corp.test")
    _close(desk, number)
    imap_account.append(_reply_quoting("li.na@corp.test", notice, "问题又出现了，还是没解决"))
    _cycle(desk)
    with desk.sessions() as session:
        tickets = {t.number: t for t in session.scalars(select(Ticket)).all()}
    assert len(tickets) == 2 and tickets[number].status == "closed" and tickets[number].satisfaction is None
    follow_up = next(t for n, t in tickets.items() if n != number)
    assert follow_up.follows_id == tickets[number].id
    assert [m for m in smtp_sink.received if kind_of(m) == "ack" and follow_up.number.encode() in m.raw]


def test_a_forged_answer_quoting_another_tickets_number_is_rejected(tmp_path, imap_account, smtp_sink,
                                                                    monkeypatch) -> None:  # noqa: ANN001
    desk = _desk(tmp_path, imap_account, smtp_sink, monkeypatch)
    victim, _ = _resolved_ticket(desk, imap_account, smtp_sink, "li.na@corp.test")
    own, own_notice = _resolved_ticket(desk, imap_account, smtp_sink, "mallory@corp.test")
    token = re.search(r"\[s:([0-9a-f]+)\]", _text(own_notice)).group(1)
    # Mallory answers in her own thread but claims the other ticket, with the only token she has.
    forged = _reply_quoting("mallory@corp.test", own_notice, f"不满意\n\n{victim} [s:{token}]")
    imap_account.append(forged.replace(f"{own} [s:{token}]".encode(), b"").replace(own.encode(), victim.encode()))
    _cycle(desk)
    with desk.sessions() as session:
        ratings = dict(session.execute(select(Ticket.number, Ticket.satisfaction)).all())
        refused = session.scalars(select(Event).where(Event.kind.in_(("rating_refused", "outsider_mail")))).all()
    assert ratings[victim] is None
    assert refused, "the forged answer is recorded as refused, not applied"


def test_451_three_times_then_250_delivers_once(tmp_path, imap_account, smtp_sink_factory,
                                                 monkeypatch) -> None:  # noqa: ANN001
    from datetime import timedelta

    from maildesk.clock import FrozenClock
    from maildesk.ingest.imap import FetchedMail

    sink = smtp_sink_factory()
    sink.script("RCPT", ["451 4.3.0 try again later"] * 3)
    desk = _desk(tmp_path, imap_account, sink, monkeypatch)
    clock = FrozenClock(desk.clock.now())
    desk = build_desk(desk.settings, Path(tmp_path), clock=clock)
    desk.runner.store_fetched("support", 1, [FetchedMail(1, request_mail("q@corp.test", "Q", "问题")[0])])
    desk.runner.process_pending()
    # only the acknowledgment is tried here: agents' notices go to other recipients of the same script
    for _ in range(20):
        desk.sender.send_due()
        clock.advance(timedelta(minutes=5))
    acks = [m for m in sink.received if kind_of(m) == "ack"]
    assert len(acks) == 1
    with desk.sessions() as session:
        row = session.scalars(select(Outbox).where(Outbox.kind == "ack")).one()
    assert row.status == "sent" and row.attempts >= 2


def test_550_dead_letters_the_mail_with_an_event_on_the_ticket(tmp_path, imap_account, smtp_sink_factory,
                                                                monkeypatch) -> None:  # noqa: ANN001
    sink = smtp_sink_factory(rcpt_replies={"gone@corp.test": "550 5.1.1 user unknown"})
    desk = _desk(tmp_path, imap_account, sink, monkeypatch)
    imap_account.append(request_mail("gone@corp.test", "账号停用", "请停用我的账号")[0])
    _cycle(desk)
    with desk.sessions() as session:
        row = session.scalars(select(Outbox).where(Outbox.kind == "ack")).one()
        event = session.scalars(select(Event).where(Event.kind == "mail_dead_letter")).one()
    assert (row.status, row.attempts) == ("dead", 1)
    assert event.ticket_id == row.ticket_id and "550" in event.data["error"]
    assert all("gone@corp.test" not in m.rcpt_tos for m in sink.received)
    desk.sender.send_due()
    told = [m for m in sink.received if kind_of(m) == "delivery_failed"]
    with desk.sessions() as session:
        ticket = session.get(Ticket, row.ticket_id)
    group = desk.policy.config.groups.get(ticket.group)
    assert told and {m.rcpt_tos[0] for m in told} <= {*(a.lower() for a in group.members), group.lead.lower(),
                                                      *(a.addresses[0] for a in
                                                        desk.policy.config.agents.members_of(ticket.group))}
