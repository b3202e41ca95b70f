"""Issue 5 acceptance: the whole life of a ticket by mail, on an injected clock (no sleeping).

Mails reach the desk as stored raw mail (the IMAP part is covered elsewhere); everything after — rules,
SLA, sweeps, the outbox, SMTP to a real aiosmtpd sink — is the real thing.  Every sweep runs twice: the
second must queue nothing.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from email import message_from_bytes
from email.message import EmailMessage
from email.utils import make_msgid
from itertools import count as counter
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from maildesk.cli import load_settings
from maildesk.clock import FrozenClock
from maildesk.daemon import build_desk
from maildesk.ingest.imap import FetchedMail
from maildesk.store.models import Outbox, Ticket

from .desk_helpers import kind_of, request_mail, write_config

SH = ZoneInfo("Asia/Shanghai")
_uids = counter(1)


class Walk:
    """A desk on a frozen clock, and the timeline of what the SMTP sink received."""

    def __init__(self, tmp_path: Path, sink, monkeypatch, start: datetime) -> None:  # noqa: ANN001
        monkeypatch.setenv("MAILDESK_TEST_IMAP_PASSWORD", "unused")
        config = write_config(tmp_path, imap_host="127.0.0.1", imap_port=1, imap_user="x", smtp_host=sink.host,
                              smtp_port=sink.port)
        settings, base = load_settings(str(config))
        self.clock = FrozenClock(start)
        self.desk = build_desk(settings, base, clock=self.clock)
        self.sink = sink
        self.timeline: list[tuple[str, str, str]] = []

    def deliver(self, raw: bytes) -> None:
        self.desk.runner.store_fetched("support", 1, [FetchedMail(next(_uids), raw)])
        self.desk.runner.process_pending()
        self.tick()

    def tick(self) -> None:
        first = self.desk.sweeper.sweep()
        second = self.desk.sweeper.sweep()
        assert second.mails == 0, "a second sweep at the same moment queued mail again"
        seen = len(self.sink.received)
        self.desk.sender.send_due()
        when = self.clock.now().astimezone(SH).strftime("%a %H:%M")
        self.timeline += [(when, kind_of(m), m.rcpt_tos[0]) for m in self.sink.received[seen:]]
        assert first.mails >= 0

    def run_until(self, end: datetime, step: timedelta) -> None:
        while self.clock.now() < end:
            self.clock.advance(step)
            self.tick()

    def first(self, kind: str) -> tuple[str, str, str]:
        return next(t for t in self.timeline if t[1] == kind)

    def kinds(self, kind: str) -> list[tuple[str, str, str]]:
        return [t for t in self.timeline if t[1] == kind]

    def ticket(self) -> Ticket:
        with self.desk.sessions() as session:
            return session.scalars(select(Ticket)).one()


def _agent_resolves(walk: Walk, agent: str, text: str) -> None:
    """The assignee answers from their mail client to their personal reply address."""
    notice = next(m for m in walk.sink.received if kind_of(m) in ("new_ticket_notice", "assigned_notice")
                  and agent in m.rcpt_tos)
    ticket = walk.ticket()
    msg = EmailMessage()
    msg["From"], msg["To"] = agent, message_from_bytes(notice.raw)["Reply-To"]
    msg["Subject"] = f"Re: 【技术支持】{ticket.number} {ticket.subject}"
    msg["Message-ID"] = make_msgid(domain="example.com")
    msg.set_content(f"#状态 已解决\n{text}")
    walk.deliver(msg.as_bytes())


def test_an_urgent_ticket_on_a_sunday_night_from_request_to_auto_close(tmp_path, smtp_sink, monkeypatch) -> None:  # noqa: ANN001
    walk = Walk(tmp_path, smtp_sink, monkeypatch, datetime(2026, 11, 22, 3, 0, tzinfo=SH))  # Sunday 03:00
    walk.deliver(request_mail("boss@corp.test", "生产系统宕机", "ERP 生产系统宕机，全公司无法下单！")[0])
    ticket = walk.ticket()
    assert ticket.priority == "urgent" and ticket.group == "system-ops"
    lead, supervisor = "ops-lead@example.com", walk.desk.policy.config.agents.supervisors_on_duty()[0].addresses[0]
    assert ("Sun 03:00", "ack", "boss@corp.test") in walk.timeline
    assert ("Sun 03:00", "supervisor_notice", supervisor) in walk.timeline
    assert ("Sun 03:00", "new_ticket_notice", lead) in walk.timeline

    walk.run_until(datetime(2026, 11, 22, 5, 10, tzinfo=SH), timedelta(minutes=1))
    assert walk.first("deadline_warning")[0] == "Sun 03:12"  # 75 % of 15 min, 24×7
    assert ("Sun 03:15", "escalation", lead) in walk.timeline  # first response missed → group lead
    progress = [t[0] for t in walk.kinds("progress_report")]
    assert progress == ["Sun 03:30", "Sun 04:00", "Sun 04:30", "Sun 05:00"]
    assert all(t[2] == supervisor for t in walk.kinds("progress_report"))
    assert ("Sun 05:00", "escalation", supervisor) in walk.timeline  # resolution missed → supervisor
    assert len(walk.kinds("escalation")) == 2

    _agent_resolves(walk, "ops1@example.com", "已切换到备用数据库，ERP 恢复。")
    assert ("Sun 05:10", "resolution_notice", "boss@corp.test") in walk.timeline
    walk.run_until(datetime(2026, 11, 22, 7, 0, tzinfo=SH), timedelta(minutes=10))
    assert [t[0] for t in walk.kinds("progress_report")][-1] == "Sun 05:00", "no progress reports after resolution"

    walk.run_until(datetime(2026, 11, 25, 6, 0, tzinfo=SH), timedelta(hours=1))
    # due 3 days after the resolution (Wed 05:10), seen by the first hourly sweep after it
    assert walk.kinds("auto_close") == [("Wed 06:00", "auto_close", "boss@corp.test")]
    assert walk.ticket().status == "closed"
    ids = [message_from_bytes(m.raw)["Message-ID"] for m in smtp_sink.received]
    assert len(ids) == len(set(ids)), "no mail was sent twice"


@pytest.mark.parametrize(("start", "subject", "priority", "warning", "escalation"), [
    # high: 30 business minutes; Monday 10:00 → warning 10:22:30 (seen 10:25), lead at 10:30
    (datetime(2026, 11, 23, 10, 0, tzinfo=SH), "销售部无法访问内网", "high", "Mon 10:25", "Mon 10:30"),
    # medium: 2 business hours from Friday 17:50 → due Monday 10:50, warning at 75 % = Monday 10:20
    (datetime(2026, 11, 27, 17, 50, tzinfo=SH), "我的打印机卡纸", "medium", "Mon 10:20", "Mon 10:50"),
    # low: 1 working day (9 h) from Wednesday 10:00 → due Thursday 10:00, warning at 6 h 45 → Wed 16:45
    (datetime(2026, 11, 25, 10, 0, tzinfo=SH), "咨询：如何申请第二块显示器", "low", "Wed 16:45", "Thu 10:00"),
])
def test_each_priority_warns_and_escalates_on_its_business_clock(tmp_path, smtp_sink, monkeypatch, start, subject,  # noqa: ANN001
                                                                priority, warning, escalation) -> None:
    walk = Walk(tmp_path, smtp_sink, monkeypatch, start)
    walk.deliver(request_mail("user@corp.test", subject, subject)[0])
    assert walk.ticket().priority == priority
    walk.run_until(start + timedelta(days=4), timedelta(minutes=5))
    assert walk.first("deadline_warning")[0] == warning
    assert walk.first("escalation")[0] == escalation
    first_escalation = walk.first("escalation")
    assert first_escalation[2] == walk.desk.policy.config.groups.get(walk.ticket().group).lead


def test_a_ticket_pending_on_the_requester_is_reminded_and_never_escalated(tmp_path, smtp_sink,
                                                                         monkeypatch) -> None:  # noqa: ANN001
    start = datetime(2026, 11, 23, 10, 0, tzinfo=SH)
    walk = Walk(tmp_path, smtp_sink, monkeypatch, start)
    walk.deliver(request_mail("wu@corp.test", "打印机卡纸", "三楼打印机卡纸")[0])
    agent = walk.ticket().assignee
    address = walk.desk.policy.config.agents.by_name(agent).addresses[0]
    notice = next(m for m in smtp_sink.received if address in m.rcpt_tos)
    msg = EmailMessage()
    msg["From"], msg["To"] = address, message_from_bytes(notice.raw)["Reply-To"]
    msg["Subject"], msg["Message-ID"] = f"Re: 【技术支持】{walk.ticket().number}", make_msgid(domain="example.com")
    msg.set_content("#状态 待用户\n请提供打印机型号和错误代码的照片。")
    walk.deliver(msg.as_bytes())
    assert walk.ticket().status == "pending"
    walk.run_until(start + timedelta(days=6), timedelta(hours=1))
    assert walk.kinds("escalation") == []
    reminders = walk.kinds("pending_reminder")
    assert [r[2] for r in reminders] == ["wu@corp.test", "wu@corp.test"]  # two reminders, then no more
    assert len(set(r[0] for r in reminders)) == 2
    with walk.desk.sessions() as session:
        rows = session.scalars(select(Outbox).where(Outbox.kind == "pending_reminder")).all()
    assert all(r.status == "sent" for r in rows)


def test_the_on_call_digest_goes_once_a_day_to_the_supervisors_on_duty(tmp_path, smtp_sink, monkeypatch) -> None:  # noqa: ANN001
    walk = Walk(tmp_path, smtp_sink, monkeypatch, datetime(2026, 11, 23, 8, 0, tzinfo=SH))
    walk.deliver(request_mail("a@corp.test", "VPN 无法连接", "整个销售部 VPN 无法连接")[0])
    assert walk.desk.sweeper.digest(at_local="09:00") is False  # not yet 09:00
    walk.clock.advance(timedelta(hours=1, minutes=5))
    assert walk.desk.sweeper.digest(at_local="09:00") is True
    assert walk.desk.sweeper.digest(at_local="09:00") is False  # once a day
    walk.tick()
    digests = walk.kinds("oncall_digest")
    supervisors = [a.addresses[0] for a in walk.desk.policy.config.agents.supervisors_on_duty()]
    assert sorted(d[2] for d in digests) == sorted(supervisors)
    body = next(m for m in smtp_sink.received if kind_of(m) == "oncall_digest").raw
    assert walk.ticket().number.encode() in body or b"base64" in body


def test_the_weekly_report_goes_to_the_supervisors_on_monday_morning_once(tmp_path, smtp_sink, monkeypatch) -> None:  # noqa: ANN001
    from maildesk.reports.schedule import send_scheduled_reports

    walk = Walk(tmp_path, smtp_sink, monkeypatch, datetime(2026, 11, 25, 10, 0, tzinfo=SH))  # Wednesday
    walk.deliver(request_mail("a@corp.test", "VPN 无法连接", "VPN 报错 809")[0])
    desk = walk.desk

    def run() -> int:
        return send_scheduled_reports(sessions=desk.sessions, clock=walk.clock, policy=desk.policy,
                                      notifier=desk.runner.notifier, templates=desk.runner.templates,
                                      timezone="Asia/Shanghai", locale="zh-CN", at_local="09:00")

    assert run() == 0  # a Wednesday
    walk.clock.set(datetime(2026, 11, 30, 8, 30, tzinfo=SH))  # Monday, before 09:00
    assert run() == 0
    walk.clock.set(datetime(2026, 11, 30, 9, 15, tzinfo=SH))
    assert run() == 1
    assert run() == 0  # once
    walk.tick()
    reports = walk.kinds("report")
    supervisors = [a.addresses[0] for a in desk.policy.config.agents.supervisors_on_duty()]
    assert len(reports) == 1 and reports[0][2] in supervisors  # one mail, to the supervisors on duty


def test_auto_close_follows_the_configured_lifecycle(tmp_path, smtp_sink, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("MAILDESK_TEST_IMAP_PASSWORD", "unused")
    config = write_config(tmp_path, imap_host="127.0.0.1", imap_port=1, imap_user="x", smtp_host=smtp_sink.host,
                          smtp_port=smtp_sink.port)
    config.write_text(config.read_text(encoding="utf-8") + '\n[lifecycle]\nauto_close_after = "1d"\n',
                      encoding="utf-8")
    settings, base = load_settings(str(config))
    walk = Walk.__new__(Walk)
    walk.clock = FrozenClock(datetime(2026, 11, 23, 10, 0, tzinfo=SH))
    walk.desk, walk.sink, walk.timeline = build_desk(settings, base, clock=walk.clock), smtp_sink, []
    walk.deliver(request_mail("c@corp.test", "打印机卡纸", "三楼打印机卡纸")[0])
    _agent_resolves(walk, "hw1@example.com", "已处理。")
    walk.run_until(datetime(2026, 11, 24, 12, 0, tzinfo=SH), timedelta(hours=1))
    assert [t[1] for t in walk.kinds("auto_close")] == ["auto_close"]
    assert walk.ticket().status == "closed"
