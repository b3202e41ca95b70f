"""Several support mailboxes: each with its own queue, and a copy in two of them is one message."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from sqlalchemy import select

from maildesk.cli import load_settings
from maildesk.config import ServerSettings
from maildesk.daemon import build_desk, imap_credential
from maildesk.errors import FetchError
from maildesk.store.models import Message, RawMail, Ticket

from .desk_helpers import count, request_mail, write_config


@pytest.fixture
def second_account(dovecot):  # noqa: ANN001, ANN201
    from .conftest import ImapAccount

    dovecot.add_user("network-desk", "n3tw0rk-pass")
    return ImapAccount(dovecot.host, dovecot.imap_port, "network-desk", "n3tw0rk-pass", dovecot)


def test_each_mailbox_has_its_queue_and_a_copy_in_both_is_one_message(tmp_path: Path, imap_account, second_account,
                                                                     smtp_sink, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("MAILDESK_TEST_IMAP_PASSWORD", imap_account.password)
    monkeypatch.setenv("MAILDESK_TEST_NETWORK_PASSWORD", second_account.password)
    config = write_config(tmp_path, imap_host=imap_account.host, imap_port=imap_account.port,
                          imap_user=imap_account.user, smtp_host=smtp_sink.host, smtp_port=smtp_sink.port)
    config.write_text(config.read_text(encoding="utf-8") + textwrap.dedent(f"""
        [[mailbox]]
        name = "network"
        host = "{second_account.host}"
        port = {second_account.port}
        security = "none"
        user = "{second_account.user}"
        password_env = "MAILDESK_TEST_NETWORK_PASSWORD"
        queue = "network"
        idle = false
    """), encoding="utf-8")
    settings, base = load_settings(str(config))
    desk = build_desk(settings, base)
    plain, _ = request_mail("a@corp.test", "Hello", "Could someone call me back, please?")
    both, _ = request_mail("b@corp.test", "打印机卡纸", "三楼打印机卡纸", message_id="same-mail@corp.test")
    second_account.append(plain)
    imap_account.append(both)
    second_account.append(both)
    for poller in desk.pollers:
        assert poller.poll_once().error is None
    desk.runner.process_pending()
    with desk.sessions() as session:
        groups = dict(session.execute(select(Ticket.requester_addr, Ticket.group)).all())
    assert groups["a@corp.test"] == "network"  # no rule chose a group: the mailbox's queue
    assert groups["b@corp.test"] == "hardware-support"  # a rule chose one: the rule wins
    assert count(desk.sessions, Ticket) == 2
    assert count(desk.sessions, Message) == 2
    assert count(desk.sessions, RawMail, RawMail.status == "duplicate") == 1


def test_an_oauth2_token_is_fetched_at_every_login_from_its_variable_or_command(tmp_path: Path) -> None:
    import datetime

    base = dict(host="h", port=993, security="tls", user="u", password_env=None,
                timeout=datetime.timedelta(seconds=5), auth="xoauth2")
    env = {"TOKEN": "first"}
    from_env = imap_credential(ServerSettings(**base, token_env="TOKEN"), "mailbox x", env)
    assert from_env() == "first"
    env["TOKEN"] = "refreshed"
    assert from_env() == "refreshed"
    script = tmp_path / "token.sh"
    script.write_text("#!/bin/sh\necho token-from-command\n")
    script.chmod(0o755)
    assert imap_credential(ServerSettings(**base, token_command=(str(script),)), "mailbox x", {})() \
        == "token-from-command"
    failing = imap_credential(ServerSettings(**base, token_command=("/bin/false",)), "mailbox x", {})
    with pytest.raises(FetchError, match="token command"):
        failing()
