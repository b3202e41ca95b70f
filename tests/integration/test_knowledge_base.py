"""Issue 7 (items 3 and 4): the knowledge base made from resolved tickets, and answers before agents.

Mails reach the desk as stored raw mail on a frozen clock (as in test_lifecycle.py); rules, the store's
full-text search (SQLite FTS5, and PostgreSQL behind the marker), the outbox and SMTP to a real aiosmtpd sink
are the real thing.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from email import message_from_bytes
from email.header import decode_header, make_header
from email.message import EmailMessage
from email.utils import make_msgid
from itertools import count as counter
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from maildesk.cli import load_settings, main
from maildesk.clock import FrozenClock
from maildesk.daemon import build_desk
from maildesk.ingest.imap import FetchedMail
from maildesk.store.models import Event, KbArticle, Ticket

from .desk_helpers import kind_of, request_mail, write_config

SH = ZoneInfo("Asia/Shanghai")
AGENT = "hw1@example.com"  # 刘工, 硬件支持组 in the shipped agents.toml
FIRST = "li.na@corp.test"
SECOND = "wang.fang@corp.test"
_uids = counter(1)


class KbDesk:
    """A desk on a frozen clock; ``deliver`` stores, processes and sends as the daemon would."""

    def __init__(self, tmp_path: Path, sink, monkeypatch, database_url: str | None) -> None:  # noqa: ANN001
        monkeypatch.setenv("MAILDESK_TEST_IMAP_PASSWORD", "unused")
        self.config = write_config(tmp_path, imap_host="127.0.0.1", imap_port=1, imap_user="x",
                                   smtp_host=sink.host, smtp_port=sink.port, database_url=database_url)
        settings, base = load_settings(str(self.config))
        self.clock = FrozenClock(datetime(2026, 11, 23, 10, 0, tzinfo=SH))  # a Monday morning
        self.desk = build_desk(settings, base, clock=self.clock)
        self.sink = sink

    def deliver(self, raw: bytes) -> None:
        self.desk.runner.store_fetched("support", 1, [FetchedMail(next(_uids), raw)])
        self.desk.runner.process_pending()
        self.desk.sweeper.sweep()
        self.desk.sender.send_due()
        self.clock.advance(timedelta(minutes=5))

    def mails(self, kind: str, to: str | None = None) -> list:  # noqa: ANN201
        return [m for m in self.sink.received if kind_of(m) == kind and (to is None or to in m.rcpt_tos)]

    def ticket_of(self, requester: str) -> Ticket:
        with self.desk.sessions() as session:
            return session.scalars(select(Ticket).where(Ticket.requester_addr == requester)
                                   .order_by(Ticket.id.desc())).first()

    def events(self, kind: str) -> list[Event]:
        with self.desk.sessions() as session:
            return list(session.scalars(select(Event).where(Event.kind == kind).order_by(Event.id)))

    def article(self, number: str = "KB0001") -> KbArticle | None:
        with self.desk.sessions() as session:
            return session.scalar(select(KbArticle).where(KbArticle.number == number))


def _text(raw: bytes) -> str:
    msg = message_from_bytes(raw)
    part = next(p for p in msg.walk() if p.get_content_type() == "text/plain")
    return part.get_payload(decode=True).decode("utf-8")


def _html(raw: bytes) -> str:
    msg = message_from_bytes(raw)
    part = next(p for p in msg.walk() if p.get_content_type() == "text/html")
    return part.get_payload(decode=True).decode("utf-8")


def _subject(raw: bytes) -> str:
    return str(make_header(decode_header(message_from_bytes(raw)["Subject"])))


def _agent_mail(to: str, subject: str, body: str) -> bytes:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = f"刘工 <{AGENT}>", to, subject
    msg["Message-ID"] = make_msgid(domain="example.com")
    msg.set_content(body)
    return msg.as_bytes()


def _requester_reply(sender: str, number: str, body: str) -> bytes:
    msg = EmailMessage()
    msg["From"], msg["To"] = sender, "support@desk.test"
    msg["Subject"] = f"回复: 【技术支持】{number} 打印机又卡纸了"
    msg["Message-ID"] = make_msgid(domain="corp.test")
    msg.set_content(body)
    return msg.as_bytes()


def _resolve_with_kb(kb: KbDesk) -> str:
    """A printer request, resolved by the agent with #知识库 from their personal reply address."""
    kb.deliver(request_mail(FIRST, "打印机无法打印", "财务部三楼打印机一直卡纸，无法打印。", name="李娜")[0])
    ticket = kb.ticket_of(FIRST)
    notice = kb.mails("new_ticket_notice", AGENT)[0]
    kb.deliver(_agent_mail(message_from_bytes(notice.raw)["Reply-To"], f"回复: 【技术支持】{ticket.number} 打印机无法打印",
                           "#知识库\n#状态 已解决\n原因: 搓纸轮老化\n已更换搓纸轮并清理打印队列，打印恢复正常。\n\n刘工"))
    return ticket.number


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def kb(request: pytest.FixtureRequest, tmp_path: Path, smtp_sink, monkeypatch) -> KbDesk:  # noqa: ANN001
    url = request.getfixturevalue("pg_url") if request.param == "postgres" else None
    return KbDesk(tmp_path, smtp_sink, monkeypatch, url)


def test_a_ticket_resolved_with_kb_becomes_an_article_mailed_to_its_agent(kb: KbDesk) -> None:
    number = _resolve_with_kb(kb)
    article = kb.article()
    assert article is not None and article.version == 1 and article.category == "hardware"
    assert article.title == "打印机无法打印" and "三楼打印机一直卡纸" in article.problem
    assert article.cause == "搓纸轮老化" and article.solution.startswith("已更换搓纸轮")
    assert [e.data["article"] for e in kb.events("kb_article_created")] == ["KB0001"]
    mails = kb.mails("kb_article", AGENT)
    assert len(mails) == 1 and _subject(mails[0].raw) == "【知识库】KB0001 打印机无法打印"
    assert message_from_bytes(mails[0].raw)["Reply-To"].startswith("support+")
    assert kb.ticket_of(FIRST).number == number and kb.ticket_of(FIRST).status == "resolved"


def test_a_new_mail_about_the_same_problem_gets_the_article_and_an_unrelated_one_none(kb: KbDesk) -> None:
    _resolve_with_kb(kb)
    kb.deliver(request_mail(SECOND, "打印机又卡纸了", "三楼的打印机卡纸，打不出来，麻烦看看。")[0])
    ack = kb.mails("ack", SECOND)[0]
    assert "KB0001" in _text(ack.raw) and "已更换搓纸轮" in _text(ack.raw) and "已解决" in _text(ack.raw)
    assert "KB0001" in _html(ack.raw)
    suggested = kb.events("kb_suggested")
    assert [e.data["articles"] for e in suggested] == [["KB0001"]]
    assert suggested[0].ticket_id == kb.ticket_of(SECOND).id and suggested[0].data["scores"][0] >= 0.4

    kb.deliver(request_mail("zhou@corp.test", "VPN 连不上", "在家无法连接公司 VPN，提示证书错误。")[0])
    assert "KB0001" not in _text(kb.mails("ack", "zhou@corp.test")[0].raw)
    assert len(kb.events("kb_suggested")) == 1


def test_solved_after_a_suggestion_resolves_the_ticket_and_it_closes_by_itself(kb: KbDesk) -> None:
    _resolve_with_kb(kb)
    kb.deliver(request_mail(SECOND, "打印机又卡纸了", "三楼的打印机卡纸，打不出来，麻烦看看。")[0])
    number = kb.ticket_of(SECOND).number
    kb.deliver(_requester_reply(SECOND, number, "已解决，谢谢！\n\n> 以下知识库文章可能已经能解决您的问题"))
    ticket = kb.ticket_of(SECOND)
    assert ticket.status == "resolved"
    solved = kb.events("kb_solved")
    assert len(solved) == 1 and solved[0].data["solved_by"] == "kb" and solved[0].data["articles"] == ["KB0001"]
    kb.clock.advance(timedelta(days=4))
    kb.deliver(request_mail("zhou@corp.test", "VPN 连不上", "在家无法连接公司 VPN。")[0])  # time passes, sweeps run
    assert kb.ticket_of(SECOND).status == "closed"


def test_solved_means_nothing_without_suggestions(kb: KbDesk) -> None:
    kb.deliver(request_mail(SECOND, "VPN 连不上", "在家无法连接公司 VPN。")[0])
    kb.deliver(_requester_reply(SECOND, kb.ticket_of(SECOND).number, "已解决"))
    assert kb.ticket_of(SECOND).status != "resolved" and kb.events("kb_solved") == []


def test_an_agent_edits_the_article_by_replying_to_its_mail(kb: KbDesk) -> None:
    _resolve_with_kb(kb)
    article_mail = kb.mails("kb_article", AGENT)[0]
    reply_to = message_from_bytes(article_mail.raw)["Reply-To"]
    kb.deliver(_agent_mail(reply_to, "Re: 【知识库】KB0001 打印机无法打印",
                           "标题: 打印机卡纸无法打印\n原因: 搓纸轮磨损，纸张受潮\n\n> 标题: 打印机无法打印"))
    article = kb.article()
    assert article.title == "打印机卡纸无法打印" and article.cause == "搓纸轮磨损，纸张受潮"
    assert article.version == 2 and article.solution.startswith("已更换搓纸轮")
    edits = kb.events("kb_article_edited")
    assert len(edits) == 1 and edits[0].data["fields"] == ["title", "cause"] and edits[0].actor == AGENT
    assert "受潮" in article.search_text


def test_a_reply_to_an_article_mail_from_someone_else_edits_nothing(kb: KbDesk) -> None:
    _resolve_with_kb(kb)
    forged = EmailMessage()
    forged["From"], forged["To"] = AGENT, "support@desk.test"  # the agent's From, but no proof
    forged["Subject"], forged["Message-ID"] = "Re: 【知识库】KB0001", make_msgid(domain="example.com")
    forged.set_content("标题: 已被篡改")
    kb.deliver(forged.as_bytes())
    assert kb.article().title == "打印机无法打印" and kb.article().version == 1


def test_kb_export_writes_one_markdown_file_per_article_and_kb_add_makes_one_by_hand(kb: KbDesk,
                                                                                   tmp_path: Path) -> None:
    _resolve_with_kb(kb)
    runner = CliRunner()
    out = tmp_path / "export"
    result = runner.invoke(main, ["kb", "export", "-c", str(kb.config), "--out", str(out)])
    assert result.exit_code == 0, result.output
    text = (out / "KB0001.md").read_text(encoding="utf-8")
    assert text.startswith("# KB0001 打印机无法打印") and "## 原因 / Cause\n\n搓纸轮老化" in text
    listed = runner.invoke(main, ["kb", "list", "-c", str(kb.config)])
    assert listed.exit_code == 0 and "KB0001" in listed.output

    kb.deliver(request_mail(SECOND, "显示器不亮", "显示器接上电源后不亮。")[0])
    number = kb.ticket_of(SECOND).number
    refused = runner.invoke(main, ["kb", "add", "-c", str(kb.config), number])
    assert refused.exit_code != 0 and "resolved" in refused.output
    with kb.desk.sessions() as session:
        ticket = session.scalars(select(Ticket).where(Ticket.number == number)).one()
        ticket.status, ticket.solution = "resolved", "更换了显示器电源线。"
        session.commit()
    added = runner.invoke(main, ["kb", "add", "-c", str(kb.config), number])
    assert added.exit_code == 0 and "KB0002 created" in added.output, added.output
    again = runner.invoke(main, ["kb", "add", "-c", str(kb.config), number])
    assert "KB0002 already exists" in again.output
    shown = runner.invoke(main, ["kb", "show", "-c", str(kb.config), "kb0002"])
    assert "更换了显示器电源线" in shown.output
