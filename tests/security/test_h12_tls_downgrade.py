"""H12 completed: an expired server certificate, and STARTTLS stripped by a man in the middle, for SMTP and IMAP.

(Self-signed / no CA and a certificate for another host are in ``test_h11_h12_protocol.py``.)

- Expired: the test CA issues a certificate valid only on 2020-01-01 for localhost/127.0.0.1.  Dovecot (IMAPS
  and IMAP STARTTLS) and the SMTP sink (implicit TLS) present it; maildesk trusts the CA and still refuses,
  naming the expiry, before any LOGIN/AUTH (Dovecot logs no login, the sink keeps nothing).
- Stripped: ``StripProxy`` overwrites the STARTTLS capability of a Dovecot and of an SMTP sink that would both
  accept a password in clear (``disable_plaintext_auth = no``, ``auth_require_tls=False``).  maildesk in
  ``starttls`` mode must stop with an error that says STARTTLS is missing, and the proxy must have seen no
  LOGIN/AUTH command and neither the password nor its base64 forms from the client.
- Then the same proxy without stripping, with the right CA file: the mailbox opens and the mail is delivered.
"""

from __future__ import annotations

import base64
import dataclasses
import shutil
import ssl
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from devstack.dovecot import Dovecot
from devstack.tlsca import TestCA
from maildesk.errors import FetchError
from maildesk.ingest.imap import ImapSource
from maildesk.outbound.compose import Envelope, compose
from maildesk.outbound.render import Rendered
from maildesk.outbound.smtp import SmtpTransport

from .desk import SUPPORT, make_desk
from .stripproxy import StripProxy

IMAP_USER, IMAP_PASSWORD = "tlsuser", "imap-Secret-pw-4711"
SMTP_USER, SMTP_PASSWORD = "desk", "smtp-Secret-pw-0815"


def _secret_forms(user: str, password: str) -> list[bytes]:
    """The password as LOGIN, AUTH PLAIN and AUTH LOGIN would put it on the wire."""
    plain = base64.b64encode(f"\0{user}\0{password}".encode())
    return [password.encode(), plain, base64.b64encode(password.encode()), base64.b64encode(password.encode())[:-2]]


def _assert_no_credentials(proxy: StripProxy, user: str, password: str) -> None:
    sent = proxy.client_bytes
    for form in _secret_forms(user, password):
        assert form not in sent, f"{form!r} went through the proxy in clear"
    upper = sent.upper()
    for verb in (b"LOGIN", b"AUTHENTICATE", b"AUTH "):
        assert verb not in upper, f"{verb!r} was sent: {sent[:300]!r}"


@pytest.fixture
def expired_dovecot(dovecot_factory, test_ca: TestCA) -> Iterator[Dovecot]:  # noqa: ANN001
    """A Dovecot whose server certificate (signed by the test CA) expired in 2020."""
    state = Path(tempfile.mkdtemp(prefix="devstack-dovecot-expired-"))  # not tmp_path: see dovecot fixture
    try:
        test_ca.issue("localhost", state / "tls", ("localhost", "127.0.0.1"), expired=True, file_stem="server")
        yield dovecot_factory(state_dir=state, ca=test_ca, users={IMAP_USER: IMAP_PASSWORD})
    finally:
        shutil.rmtree(state, ignore_errors=True)


def _desk(tmp_path, smtp_sink, monkeypatch, server):  # noqa: ANN001, ANN202
    account = type("A", (), {"host": server.host, "port": server.imap_port, "user": IMAP_USER,
                             "password": IMAP_PASSWORD})()
    return make_desk(tmp_path, account, smtp_sink, monkeypatch)


def _mailbox(desk, security: str, port: int, ca_file: str | None):  # noqa: ANN001, ANN202
    box = desk.pollers[0].settings
    server = dataclasses.replace(box.server, security=security, port=port, ca_file=ca_file, host="127.0.0.1")
    return dataclasses.replace(box, server=server)


def _envelope():  # noqa: ANN202
    return compose(Rendered("s", "t", None), Envelope(SUPPORT, "desk", [("", "a@corp.test")], SUPPORT),
                   kind="ack", dedup_key="k", message_id="m@desk.test", date_at=datetime(2026, 11, 23, tzinfo=UTC))


def _send(desk, port: int, security: str, ca_file: str | None, user: str | None = None) -> str | None:  # noqa: ANN001
    settings = dataclasses.replace(desk.settings.smtp, security=security, port=port, ca_file=ca_file,
                                   host="127.0.0.1", user=user)
    error = SmtpTransport(settings, SMTP_PASSWORD).send_batch([_envelope()])[0].error
    return None if error is None else str(error)


# ----------------------------------------------------------------------------------------- expired


@pytest.mark.parametrize("security", ["tls", "starttls"])
def test_imap_with_an_expired_certificate_is_refused_before_login(security: str, tmp_path, expired_dovecot,
                                                                  test_ca, smtp_sink, monkeypatch) -> None:  # noqa: ANN001
    desk = _desk(tmp_path, smtp_sink, monkeypatch, expired_dovecot)
    port = expired_dovecot.imaps_port if security == "tls" else expired_dovecot.imap_port
    with pytest.raises(FetchError) as refused:
        ImapSource(_mailbox(desk, security, port, str(test_ca.cert_path)), desk.pollers[0].credential).connect()
    print(refused.value)
    assert "certificate has expired" in str(refused.value)
    assert f"Login: user=<{IMAP_USER}>" not in expired_dovecot.log_tail(200)


def test_smtp_with_an_expired_certificate_is_refused_before_auth(tmp_path, smtp_sink_factory, test_ca: TestCA,
                                                                 imap_account, smtp_sink, monkeypatch) -> None:  # noqa: ANN001
    cert, key = test_ca.issue("localhost", tmp_path / "expired", ("localhost", "127.0.0.1"), expired=True)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(cert), str(key))
    expired = smtp_sink_factory(tls_context=context, implicit_tls=True, auth=(SMTP_USER, SMTP_PASSWORD))
    desk = make_desk(tmp_path, imap_account, smtp_sink, monkeypatch)
    error = _send(desk, expired.port, "tls", str(test_ca.cert_path), SMTP_USER)
    print(error)
    assert error is not None and "certificate has expired" in error
    assert expired.received == []


# ----------------------------------------------------------------------------------------- STARTTLS stripped


def test_imap_starttls_stripped_by_a_proxy_stops_before_login_and_works_without_it(
        tmp_path, dovecot_factory, smtp_sink, monkeypatch) -> None:  # noqa: ANN001
    server = dovecot_factory(tls=True, users={IMAP_USER: IMAP_PASSWORD})
    desk = _desk(tmp_path, smtp_sink, monkeypatch, server)
    ca = str(server.ca.cert_path)
    credential = desk.pollers[0].credential
    with StripProxy(server.host, server.imap_port) as proxy:
        with pytest.raises(FetchError) as refused:
            ImapSource(_mailbox(desk, "starttls", proxy.port, ca), credential).connect()
        print(refused.value)
        assert proxy.stripped >= 1, "the proxy never saw a STARTTLS capability to strip"
        assert "STARTTLS" in str(refused.value)
        _assert_no_credentials(proxy, IMAP_USER, IMAP_PASSWORD)
    assert f"Login: user=<{IMAP_USER}>" not in server.log_tail(200)
    with StripProxy(server.host, server.imap_port, strip=False) as honest:
        with pytest.raises(FetchError):  # no CA file: the test CA is not trusted
            ImapSource(_mailbox(desk, "starttls", honest.port, None), credential).connect()
        with ImapSource(_mailbox(desk, "starttls", honest.port, ca), credential) as source:
            assert source.uidvalidity() > 0
        _assert_no_credentials(honest, IMAP_USER, IMAP_PASSWORD)  # the login went inside TLS


def test_smtp_starttls_stripped_by_a_proxy_stops_before_auth_and_works_without_it(
        tmp_path, smtp_sink_factory, test_ca: TestCA, imap_account, smtp_sink, monkeypatch) -> None:  # noqa: ANN001
    sink = smtp_sink_factory(tls_context=test_ca.server_context(tmp_path / "tls"), auth=(SMTP_USER, SMTP_PASSWORD))
    desk = make_desk(tmp_path, imap_account, smtp_sink, monkeypatch)
    ca = str(test_ca.cert_path)
    with StripProxy(sink.host, sink.port) as proxy:
        error = _send(desk, proxy.port, "starttls", ca, SMTP_USER)
        print(error)
        assert proxy.stripped >= 1, "the proxy never saw a STARTTLS capability to strip"
        assert error is not None and "STARTTLS" in error
        _assert_no_credentials(proxy, SMTP_USER, SMTP_PASSWORD)
        assert b"MAIL FROM" not in proxy.client_bytes.upper()
    assert sink.received == []
    with StripProxy(sink.host, sink.port, strip=False) as honest:
        assert _send(desk, honest.port, "starttls", None, SMTP_USER) is not None  # CA not trusted: refused
        assert sink.received == []
        assert _send(desk, honest.port, "starttls", ca, SMTP_USER) is None
        _assert_no_credentials(honest, SMTP_USER, SMTP_PASSWORD)
    assert len(sink.received) == 1 and sink.received[0].auth_user == SMTP_USER
