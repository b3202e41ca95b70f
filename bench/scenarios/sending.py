"""Sending (scenario 5): queued outbox mails drained by ``OutboxSender`` to the sink, next to the raw limit.

The raw limit is aiosmtplib sending the same bytes to the same sink over one reused connection.  Both
run in this process against the sink process; the outbox is a fresh SQLite database filled with queued
rows (acknowledgment-like mails of about 3 kB, text and HTML, in UTF-8).
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime

import aiosmtplib
from sqlalchemy import insert

from bench.context import Run, log
from maildesk.clock import SystemClock
from maildesk.config import ServerSettings
from maildesk.outbound.sender import OutboxSender
from maildesk.outbound.smtp import SmtpTransport
from maildesk.store import migrate
from maildesk.store.models import Outbox
from maildesk.store.session import make_engine, make_session_factory

BODY = ("您好，\n\n我们已收到您的请求，工单号 {number}。优先级：中；承诺响应时间：4 个工作小时内。\n"
        "回复本邮件即可补充信息，请保留主题中的工单号。\n\n技术支持中心\n") * 4


def ack_bytes(i: int) -> tuple[str, bytes]:
    msg = EmailMessage()
    msg["From"] = "技术支持中心 <support@desk.test>"
    to = f"user{i}@corp.test"
    msg["To"] = to
    msg["Subject"] = f"【技术支持】TS20261123{i:04d} 已受理：打印机无法打印"
    msg["Date"] = format_datetime(datetime(2026, 11, 23, 2, 0, tzinfo=UTC))
    msg["Message-ID"] = f"<ack.{i}@desk.test>"
    msg["Auto-Submitted"] = "auto-replied"
    msg.set_content(BODY.format(number=f"TS20261123{i:04d}"))
    msg.add_alternative(f"<html><body><pre>{BODY.format(number=i)}</pre></body></html>", subtype="html")
    return to, msg.as_bytes()


def run(ctx: Run) -> dict[str, object]:
    n = ctx.sizes.sending
    mails = [ack_bytes(i) for i in range(n)]
    url = f"sqlite:///{ctx.tmp / 'sending' / 'maildesk.db'}"
    engine = make_engine(url)
    migrate.upgrade(engine)
    now = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(insert(Outbox), [
            {"ticket_id": None, "kind": "ack", "dedup_key": f"ack:{i}", "message_id": f"ack.{i}@desk.test",
             "mail_from": "support@desk.test", "recipients": [to], "recipient_key": to, "raw": raw,
             "status": "queued", "attempts": 0, "next_attempt_at": now - timedelta(seconds=1), "created_at": now}
            for i, (to, raw) in enumerate(mails)])
    settings = ServerSettings(host=ctx.sink.host, port=ctx.sink.port, security="none", user=None,
                              password_env=None, timeout=timedelta(seconds=60))
    sender = OutboxSender(sessions=make_session_factory(engine), clock=SystemClock(),
                          transport=SmtpTransport(settings, None))
    before = ctx.sink.count()
    started = time.perf_counter()
    report = sender.send_due()
    maildesk_s = time.perf_counter() - started
    engine.dispose()
    delivered = ctx.sink.count() - before
    started = time.perf_counter()
    asyncio.run(_raw_send(ctx.sink.host, ctx.sink.port, mails))
    raw_s = time.perf_counter() - started
    result = {
        "mails": n, "sent": report.sent, "delivered_to_sink": delivered, "batch_size": sender.batch_size,
        "maildesk": {"seconds": round(maildesk_s, 2), "mails_per_s": round(n / maildesk_s, 1)},
        "raw": {"seconds": round(raw_s, 2), "mails_per_s": round(n / raw_s, 1)},
        "ratio": round(raw_s / maildesk_s, 3),
    }
    log.info("sending: maildesk %.0f/s, raw aiosmtplib %.0f/s", n / maildesk_s, n / raw_s)
    return result


async def _raw_send(host: str, port: int, mails: list[tuple[str, bytes]]) -> None:
    client = aiosmtplib.SMTP(hostname=host, port=port, timeout=60)
    await client.connect()
    try:
        for to, raw in mails:
            await client.sendmail("support@desk.test", [to], raw)
    finally:
        await client.quit()
