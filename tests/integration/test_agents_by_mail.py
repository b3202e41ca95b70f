"""Issue 6 acceptance against Dovecot and aiosmtpd: agents work from their mail client, impostors do not."""

from __future__ import annotations

from email import message_from_bytes
from email.header import decode_header, make_header
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path

import pytest
from sqlalchemy import select

from maildesk.cli import load_settings
from maildesk.daemon import build_desk
from maildesk.store.models import Event, Message, Ticket

from .desk_helpers import SUPPORT, count, kind_of, request_mail, write_config

AGENT = "hw1@example.com"  # 硬件支持组 in the shipped agents.toml
OTHER_AGENT = "hw2@example.com"
REQUESTER = "li.na@corp.test"


@pytest.fixture
def desk(tmp_path: Path, imap_account, smtp_sink, monkeypatch):  # noqa: ANN001, ANN201
    monkeypatch.setenv("MAILDESK_TEST_IMAP_PASSWORD", imap_account.password)
    config = write_config(tmp_path, imap_host=imap_account.host, imap_port=imap_account.port,
                          imap_user=imap_account.user, smtp_host=smtp_sink.host, smtp_port=smtp_sink.port)
    settings, base = load_settings(str(config))
    return build_desk(settings, base)


def _cycle(desk) -> None:  # noqa: ANN001
    for poller in desk.pollers:
        assert poller.poll_once().error is None
    desk.runner.process_pending()
    desk.sender.send_due()


def _mails(sink, kind: str, to: str | None = None) -> list:  # noqa: ANN001
    return [m for m in sink.received if kind_of(m) == kind and (to is None or to in m.rcpt_tos)]


def _text(raw: bytes) -> str:
    msg = message_from_bytes(raw)
    part = next(p for p in msg.walk() if p.get_content_type() == "text/plain")
    return part.get_payload(decode=True).decode("utf-8")


def _subject(raw: bytes) -> str:
    return str(make_header(decode_header(message_from_bytes(raw)["Subject"])))


def _open_ticket(desk, imap_account, smtp_sink) -> tuple[str, str]:  # noqa: ANN001
    """A printer request → ticket in 硬件支持组; returns (number, the agent's personal reply address)."""
    raw, _ = request_mail(REQUESTER, "打印机无法打印", "财务部三楼打印机一直卡纸，无法打印。", name="李娜")
    imap_account.append(raw)
    _cycle(desk)
    with desk.sessions() as session:
        ticket = session.scalars(select(Ticket)).one()
    assert ticket.group == "hardware-support"
    notice = _mails(smtp_sink, "new_ticket_notice", AGENT)[0]
    reply_address = message_from_bytes(notice.raw)["Reply-To"]
    assert reply_address.startswith("support+") and reply_address.endswith("@desk.test")
    return ticket.number, reply_address


def test_each_agent_of_the_group_gets_their_own_reply_address_in_the_notice(desk, imap_account,
                                                                            smtp_sink) -> None:  # noqa: ANN001
    _open_ticket(desk, imap_account, smtp_sink)
    seen = {}
    for agent in (AGENT, OTHER_AGENT):
        notices = _mails(smtp_sink, "new_ticket_notice", agent)
        assert len(notices) == 1 and notices[0].rcpt_tos == (agent,)
        msg = message_from_bytes(notices[0].raw)
        html = next(p for p in msg.walk() if p.get_content_type() == "text/html").get_payload(decode=True)
        reply = msg["Reply-To"]
        assert reply in _text(notices[0].raw) and reply in html.decode("utf-8"), "the text shows their own address"
        assert "marker.invalid" not in _text(notices[0].raw) + html.decode("utf-8")
        seen[agent] = reply
    assert seen[AGENT] != seen[OTHER_AGENT]


def test_a_template_that_filters_the_reply_address_still_shows_each_agent_theirs(
        tmp_path, imap_account, smtp_sink, monkeypatch) -> None:  # noqa: ANN001
    import shutil

    from .desk_helpers import ROOT

    templates = tmp_path / "templates"
    shutil.copytree(ROOT / "templates", templates)
    partial = templates / "zh-CN" / "_new_ticket.txt.j2"
    partial.write_text(partial.read_text(encoding="utf-8").replace("{{ reply_address }}", "{{ reply_address|upper }}"),
                       encoding="utf-8")
    monkeypatch.setenv("MAILDESK_TEST_IMAP_PASSWORD", imap_account.password)
    config = write_config(tmp_path, imap_host=imap_account.host, imap_port=imap_account.port,
                          imap_user=imap_account.user, smtp_host=smtp_sink.host, smtp_port=smtp_sink.port,
                          desk={"templates_dir": str(templates)})
    desk = build_desk(*load_settings(str(config)))
    _open_ticket(desk, imap_account, smtp_sink)
    for agent in (AGENT, OTHER_AGENT):
        notice = _mails(smtp_sink, "new_ticket_notice", agent)[0]
        text = _text(notice.raw)
        assert message_from_bytes(notice.raw)["Reply-To"].upper() in text
        assert "MARKER.INVALID" not in text.upper()


def _agent_mail(sender: str, to: str, number: str, body: str, *, cc: str | None = None,
                headers: dict[str, str] | None = None) -> bytes:
    msg = EmailMessage()
    msg["From"] = f"张工 <{sender}>"
    msg["To"] = to
    if cc:
        msg["Cc"] = cc
    msg["Subject"] = f"回复: 【技术支持】{number} 打印机无法打印"
    msg["Message-ID"] = make_msgid(domain="example.com")
    for name, value in (headers or {}).items():
        msg[name] = value
    msg.set_content(body)
    return msg.as_bytes()


def test_an_agent_reply_reaches_the_requester_once_threaded_and_without_commands(desk, imap_account,
                                                                               smtp_sink) -> None:  # noqa: ANN001
    number, reply_address = _open_ticket(desk, imap_account, smtp_sink)
    imap_account.append(_agent_mail(AGENT, reply_address, number,
                                    "#优先级 高\n\n李女士您好，已远程清理打印队列，请再试一次。\n\n张工"))
    _cycle(desk)
    relays = _mails(smtp_sink, "agent_reply", REQUESTER)
    assert len(relays) == 1
    relay = message_from_bytes(relays[0].raw)
    assert "#优先级" not in _text(relays[0].raw) and "已远程清理打印队列" in _text(relays[0].raw)
    assert f"【技术支持】{number}" in _subject(relays[0].raw)
    assert relay["In-Reply-To"] and relay["References"]
    name = desk.policy.config.agents.by_address(AGENT).name  # the directory's name, not what the mail claims
    assert f"{name} (" in str(make_header(decode_header(relay["From"]))) and SUPPORT in relay["From"]
    assert "Auto-Submitted" not in relay  # a person's answer, not an automatic mail
    with desk.sessions() as session:
        ticket = session.scalars(select(Ticket)).one()
        assert ticket.priority == "high" and ticket.first_response_at is not None and ticket.status == "open"
        assert session.scalar(select(Event).where(Event.kind == "priority_changed")).actor == AGENT
    _cycle(desk)
    assert len(_mails(smtp_sink, "agent_reply", REQUESTER)) == 1


def test_a_note_reaches_nobody_outside_the_agents(desk, imap_account, smtp_sink) -> None:  # noqa: ANN001
    number, reply_address = _open_ticket(desk, imap_account, smtp_sink)
    before = len(smtp_sink.received)
    imap_account.append(_agent_mail(AGENT, reply_address, number, "#备注\n怀疑是定影器故障，已联系厂商。"))
    _cycle(desk)
    assert all(REQUESTER not in m.rcpt_tos for m in smtp_sink.received[before:])
    assert count(desk.sessions, Message, Message.kind == "note") == 1


def test_status_resolved_sends_the_resolution_notice_with_the_survey(desk, imap_account, smtp_sink) -> None:  # noqa: ANN001
    number, reply_address = _open_ticket(desk, imap_account, smtp_sink)
    imap_account.append(_agent_mail(AGENT, reply_address, number, "#状态 已解决\n已更换硒鼓，打印恢复正常。"))
    _cycle(desk)
    notices = _mails(smtp_sink, "resolution_notice", REQUESTER)
    assert len(notices) == 1
    text = _text(notices[0].raw)
    for word in ("非常满意", "满意", "一般", "不满意", "已更换硒鼓"):
        assert word in text
    assert "mailto:" in notices[0].raw.decode("ascii", "replace") or "mailto:" in text
    with desk.sessions() as session:
        assert session.scalars(select(Ticket)).one().status == "resolved"


def test_assign_notifies_the_new_assignee(desk, imap_account, smtp_sink) -> None:  # noqa: ANN001
    number, reply_address = _open_ticket(desk, imap_account, smtp_sink)
    imap_account.append(_agent_mail(AGENT, reply_address, number, "#指派 陈工"))
    _cycle(desk)
    with desk.sessions() as session:
        assignee = session.scalars(select(Ticket)).one().assignee
    assigned = _mails(smtp_sink, "assigned_notice")
    assert len(assigned) == 1 and assignee is not None
    assert desk.policy.config.agents.by_name(assignee).name == "陈工"
    assert assigned[0].rcpt_tos[0] in desk.policy.config.agents.by_name(assignee).addresses
    assert _mails(smtp_sink, "agent_reply") == []  # only commands: nothing relayed


def test_an_agent_from_without_authentication_runs_no_command_and_is_flagged(desk, imap_account,
                                                                           smtp_sink) -> None:  # noqa: ANN001
    number, _ = _open_ticket(desk, imap_account, smtp_sink)
    forged = _agent_mail(AGENT, SUPPORT, number, "#状态 已解决\n已处理。", headers={
        "Authentication-Results": "mx.desk.test; dkim=pass header.d=example.com; spf=pass smtp.mailfrom=example.com"})
    imap_account.append(forged)
    _cycle(desk)
    with desk.sessions() as session:
        ticket = session.scalars(select(Ticket)).one()
        assert ticket.status == "new"
        flags = session.scalars(select(Event).where(Event.kind == "agent_impersonation")).all()
    assert len(flags) == 1 and flags[0].ticket_id == ticket.id
    assert _mails(smtp_sink, "resolution_notice") == []
    assert len(_mails(smtp_sink, "impostor_notice", AGENT)) == 1


def test_a_bad_command_gets_an_answer_naming_the_line_and_changes_nothing(desk, imap_account,
                                                                       smtp_sink) -> None:  # noqa: ANN001
    number, reply_address = _open_ticket(desk, imap_account, smtp_sink)
    imap_account.append(_agent_mail(AGENT, reply_address, number, "#状态 处理中\n#优先级 特急\n马上处理。"))
    _cycle(desk)
    errors = _mails(smtp_sink, "command_error", AGENT)
    assert len(errors) == 1
    text = _text(errors[0].raw)
    assert "特急" in text and "2" in text
    with desk.sessions() as session:
        ticket = session.scalars(select(Ticket)).one()
        assert (ticket.status, ticket.priority) == ("new", "medium")
    assert _mails(smtp_sink, "agent_reply") == []


def test_an_agent_writing_to_the_requester_directly_is_stored_not_sent_again(desk, imap_account,
                                                                           smtp_sink) -> None:  # noqa: ANN001
    number, reply_address = _open_ticket(desk, imap_account, smtp_sink)
    imap_account.append(_agent_mail(AGENT, REQUESTER, number, "李女士，我十分钟后到。", cc=reply_address))
    _cycle(desk)
    assert _mails(smtp_sink, "agent_reply") == []
    assert count(desk.sessions, Message, Message.kind == "reply") == 1
    assert count(desk.sessions, Event, Event.kind == "reply_not_relayed") == 1
