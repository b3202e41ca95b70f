"""Operations: /metrics and `maildesk status` tell the truth from the database."""

from __future__ import annotations

import subprocess
import sys
import urllib.request
from pathlib import Path

from maildesk.cli import load_settings
from maildesk.clock import SystemClock
from maildesk.daemon import build_desk
from maildesk.health import serve_metrics

from .desk_helpers import request_mail, write_config


def _metric(text: str, name: str) -> float:
    line = next(line for line in text.splitlines() if line.startswith(name + " ") or line.startswith(name + "{"))
    return float(line.rsplit(" ", 1)[1])


def test_metrics_and_status_after_a_mail(tmp_path: Path, imap_account, smtp_sink, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("MAILDESK_TEST_IMAP_PASSWORD", imap_account.password)
    config = write_config(tmp_path, imap_host=imap_account.host, imap_port=imap_account.port,
                          imap_user=imap_account.user, smtp_host=smtp_sink.host, smtp_port=smtp_sink.port)
    settings, base = load_settings(str(config))
    desk = build_desk(settings, base)
    imap_account.append(request_mail("m@corp.test", "VPN 连不上", "VPN 客户端报错 809")[0])
    desk.pollers[0].poll_once()
    desk.runner.process_pending()
    desk.sender.send_due()

    server = serve_metrics("127.0.0.1", 0, desk.sessions, SystemClock())
    try:
        port = server.server_address[1]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
            assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            text = response.read().decode()
    finally:
        server.shutdown()
    assert _metric(text, "maildesk_tickets_created_total") == 1
    from maildesk.store.models import Outbox

    from .desk_helpers import count

    sent = count(desk.sessions, Outbox, Outbox.status == "sent")  # the ack and the group's new-ticket notices
    assert sent >= 2
    assert _metric(text, "maildesk_mails_sent_total") == sent
    assert _metric(text, "maildesk_outbox_depth") == 0
    assert _metric(text, "maildesk_quarantine_size") == 0
    assert 'maildesk_mails_fetched_total{status="done"} 1' in text
    assert _metric(text, 'maildesk_mailbox_up{mailbox="support"}') == 1
    assert _metric(text, 'maildesk_last_successful_poll_timestamp_seconds{mailbox="support"}') > 0

    result = subprocess.run([sys.executable, "-m", "maildesk", "status", "-c", str(config)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "tickets: 1 in all, 1 open" in result.stdout
    assert f"outbox: 0 waiting, {sent} sent, 0 dead letters" in result.stdout
    assert imap_account.password not in result.stdout + result.stderr
