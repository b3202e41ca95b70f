"""H11 protocol injection and H12 TLS verification at the IMAP and SMTP edges.

H11: hostile addresses never reach the SMTP envelope (``compose`` drops them; end to end the sink sees only
clean RCPTs), and ``ImapSource`` refuses any UID that is not an integer before a command is built.
H12: implicit TLS to a Dovecot with a test-CA certificate is refused without ``ca_file`` (the error names the
certificate problem) and works with it; SMTP to a server whose certificate names another host is refused.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest

from devstack.tlsca import TestCA
from maildesk.errors import FetchError
from maildesk.ingest.imap import ImapSource
from maildesk.outbound.compose import Envelope, compose, safe_address
from maildesk.outbound.render import Rendered
from maildesk.outbound.smtp import SmtpTransport
from maildesk.store.models import RawMail
from tests.integration.desk_helpers import count

from .desk import SUPPORT, cycle, make_desk, wait_for_mails

HOSTILE_ADDRESSES = ("a@corp.test\r\nRCPT TO:<x@evil.test>", "a@corp.test\nDATA", "<>", "<a@corp.test>",
                     "a@corp.test>\r\nRCPT TO:<x@evil.test", "a" * 300 + "@corp.test", "a b@corp.test",
                     "a@corp.test,x@evil.test", "a@corp.test\x00x@evil.test", "", "@corp.test", "a@")


@pytest.mark.parametrize("address", HOSTILE_ADDRESSES)
def test_a_hostile_address_never_reaches_the_envelope(address: str) -> None:
    assert safe_address(address) is None
    rendered = Rendered(subject="s", text="t", html=None)
    ok = compose(rendered, Envelope("support@desk.test", "desk", [("", address), ("", "ok@corp.test")], address),
                 kind="ack", dedup_key="k", message_id="m@desk.test", date_at=datetime(2026, 11, 23, tzinfo=UTC))
    assert ok.recipients == ("ok@corp.test",) and ok.mail_from == ""
    with pytest.raises(ValueError):
        compose(rendered, Envelope("support@desk.test", "desk", [("", address)], "b@desk.test"), kind="ack",
                dedup_key="k", message_id="m@desk.test", date_at=datetime(2026, 11, 23, tzinfo=UTC))


def test_hostile_sender_addresses_end_to_end_put_only_clean_rcpts_on_the_wire(tmp_path, imap_account, smtp_sink,
                                                                               monkeypatch) -> None:  # noqa: ANN001
    desk = make_desk(tmp_path, imap_account, smtp_sink, monkeypatch)
    froms = ['"a\\r\\nRCPT TO:<x@evil.test>"@corp.test', "<>", "a" * 300 + "@corp.test",
             '"x>\\r\\nRCPT TO:<y@evil.test"@corp.test', "=?utf-8?q?a=0D=0ARCPT_TO=3A=3Cx=40evil=2Etest=3E?=@corp.test"]
    raws = [(f"From: {f}\r\nReply-To: {f}\r\nTo: {SUPPORT}\r\nSubject: h11 {i}\r\nMessage-ID: <h11-{i}@corp.test>\r\n"
             "\r\nbody\r\n").encode() for i, f in enumerate(froms)]
    imap_account.append_many(raws)
    assert cycle(desk).errors == (None,)
    assert count(desk.sessions, RawMail) == len(raws)  # some fail and wait for a retry: see the README (gap)
    for mail in wait_for_mails(smtp_sink, 1, timeout=3):
        for rcpt in (*mail.rcpt_tos, mail.mail_from):
            assert safe_address(rcpt) == rcpt or rcpt == "", rcpt
            assert "evil" not in rcpt


@pytest.mark.parametrize("uid", ["1:*", "1,2", "1 OR ALL", "1)\r\nA1 LOGOUT", "*", None, b"1:*"])
def test_imap_commands_take_only_integer_uids(uid: object, tmp_path, imap_account, smtp_sink, monkeypatch) -> None:  # noqa: ANN001
    desk = make_desk(tmp_path, imap_account, smtp_sink, monkeypatch)
    source = ImapSource(desk.pollers[0].settings, desk.pollers[0].credential)  # never connected: a command
    with pytest.raises((ValueError, TypeError)):                               # would fail "not connected"
        list(source.fetch([3, uid]))  # type: ignore[list-item]
    with pytest.raises((ValueError, TypeError)):
        source.mark_done([uid])  # type: ignore[list-item]


def _tls_mailbox(desk, port: int, ca_file: str | None, host: str = "127.0.0.1"):  # noqa: ANN001, ANN202
    box = desk.pollers[0].settings
    server = dataclasses.replace(box.server, security="tls", port=port, ca_file=ca_file, host=host)
    return dataclasses.replace(box, server=server)


def test_imap_tls_without_the_ca_is_refused_and_works_with_it(tmp_path, dovecot_factory, smtp_sink,
                                                              monkeypatch) -> None:  # noqa: ANN001
    server = dovecot_factory(tls=True, users={"tlsuser": "tls-secret-pw"})
    account = type("A", (), {"host": server.host, "port": server.imap_port, "user": "tlsuser",
                             "password": "tls-secret-pw"})()
    desk = make_desk(tmp_path, account, smtp_sink, monkeypatch)
    credential = desk.pollers[0].credential
    with pytest.raises(FetchError) as refused:
        ImapSource(_tls_mailbox(desk, server.imaps_port, None), credential).connect()
    assert "CERTIFICATE_VERIFY_FAILED" in str(refused.value) or "certificate" in str(refused.value).lower()
    assert "Login: user=<tlsuser>" not in server.log_tail(200)
    with ImapSource(_tls_mailbox(desk, server.imaps_port, str(server.ca.cert_path)), credential) as source:
        assert source.uidvalidity() > 0


def test_smtp_tls_to_a_certificate_for_another_host_is_refused(tmp_path, smtp_sink_factory, test_ca: TestCA,
                                                               imap_account, smtp_sink, monkeypatch) -> None:  # noqa: ANN001
    import ssl

    cert, key = test_ca.issue("other", tmp_path / "other", names=("mail.other.test",))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(cert), str(key))
    wrong = smtp_sink_factory(tls_context=context, implicit_tls=True)
    right = smtp_sink_factory(tls_context=test_ca.server_context(tmp_path / "right"), implicit_tls=True)
    desk = make_desk(tmp_path, imap_account, smtp_sink, monkeypatch)
    envelope = compose(Rendered("s", "t", None), Envelope(SUPPORT, "desk", [("", "a@corp.test")], SUPPORT),
                       kind="ack", dedup_key="k", message_id="m@desk.test", date_at=datetime(2026, 11, 23, tzinfo=UTC))
    for sink, ca, ok in ((wrong, str(test_ca.cert_path), False), (right, None, False),
                         (right, str(test_ca.cert_path), True)):
        settings = dataclasses.replace(desk.settings.smtp, security="tls", port=sink.port, ca_file=ca,
                                       host="localhost" if sink is right else "127.0.0.1")
        result = SmtpTransport(settings, None).send_batch([envelope])[0]
        print(sink.port, ca, result.error)
        assert (result.error is None) == ok, result.error
    assert len(wrong.received) == 0 and len(right.received) == 1
