"""Fixtures of the integration tests: a real Dovecot, the SMTP sink, the TCP fault proxy and PostgreSQL.

All servers listen on 127.0.0.1 on free ports and are stopped in finalizers (Dovecot also at interpreter
exit).  Factories follow aiosmtpd's test style: call the fixture to get one more configured instance.

- ``dovecot`` (session): one shared instance; ``imap_account`` (function) gives each test its own user.
- ``dovecot_factory`` (function): ``dovecot_factory(tls=True, users={...})`` for a private instance.
- ``smtp_sink`` (function) and ``smtp_sink_factory(**SmtpSink kwargs)``.
- ``tcp_proxy(upstream_host, upstream_port)`` (function factory).
- ``test_ca`` (session): the throwaway CA that the TLS variants share.
- ``pg_url`` (function): a fresh database ``maildesk_test_<random>`` on ``MAILDESK_TEST_PG_URL``.

Dovecot state folders are private ``/tmp/devstack-dovecot-*`` folders removed at stop; set
``MAILDESK_TEST_KEEP_DOVECOT=1`` to keep them (config and log) for a post-mortem.

Every test here runs under a SIGALRM deadline (``MAILDESK_TEST_TIMEOUT`` seconds, default 120) so no test
can hang forever even where a library has no timeout.
"""

from __future__ import annotations

import os
import secrets
import signal
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from devstack.dovecot import Dovecot, find_dovecot_binary
from devstack.smtpsink import SmtpSink
from devstack.tcpproxy import TcpProxy
from devstack.tlsca import TestCA

DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
TEST_TIMEOUT = float(os.environ.get("MAILDESK_TEST_TIMEOUT", "120"))
KEEP_STATE = os.environ.get("MAILDESK_TEST_KEEP_DOVECOT", "") not in ("", "0")


@pytest.fixture(autouse=True)
def _test_deadline(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail (not hang) a test that runs longer than MAILDESK_TEST_TIMEOUT seconds."""
    if TEST_TIMEOUT <= 0 or os.name != "posix":
        yield
        return

    def expire(signum: int, frame: Any) -> None:
        raise TimeoutError(f"{request.node.nodeid} ran longer than {TEST_TIMEOUT:.0f} s "
                           "(MAILDESK_TEST_TIMEOUT)")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, TEST_TIMEOUT)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _require_dovecot() -> None:
    if find_dovecot_binary() is None:
        pytest.skip("dovecot is not installed (make test installs it: apt-get install dovecot-imapd)")


@pytest.fixture(scope="session")
def test_ca(tmp_path_factory: pytest.TempPathFactory) -> TestCA:
    return TestCA(tmp_path_factory.mktemp("test-ca"))


@pytest.fixture(scope="session")
def dovecot() -> Iterator[Dovecot]:
    """The Dovecot shared by the session; tests get their own user through ``imap_account``."""
    _require_dovecot()
    # Not under tmp_path: pytest resets /tmp/pytest-of-USER to 0700 whenever another session starts and
    # the mail processes (nobody) would lose access; Dovecot makes and removes its own /tmp folder.
    instance = Dovecot(keep_state=KEEP_STATE)
    instance.start()
    try:
        yield instance
    finally:
        instance.stop()


@pytest.fixture
def dovecot_factory() -> Iterator[Callable[..., Dovecot]]:
    """Start private Dovecot instances (``dovecot_factory(tls=True)``); all stopped after the test."""
    _require_dovecot()
    started: list[Dovecot] = []

    def make(**kwargs: Any) -> Dovecot:
        kwargs.setdefault("keep_state", KEEP_STATE)
        instance = Dovecot(**kwargs)  # own /tmp folder, see ``dovecot``
        started.append(instance)
        return instance.start()

    try:
        yield make
    finally:
        for instance in started:
            instance.stop()


@dataclass
class ImapAccount:
    """A fresh IMAP user of the session Dovecot (one per test, so mailboxes are never shared)."""

    host: str
    port: int
    user: str
    password: str
    dovecot: Dovecot = field(repr=False)

    def append(self, raw: bytes, folder: str = "INBOX", flags: Iterable[str] = ()) -> int | None:
        """APPEND one mail; returns its UID."""
        return self.dovecot.append(self.user, self.password, folder, raw, flags)

    def append_many(self, raws: Iterable[bytes], folder: str = "INBOX", flags: Iterable[str] = ()) -> list[int]:
        return self.dovecot.append_many(self.user, self.password, folder, raws, flags)

    def create_folder(self, folder: str) -> None:
        self.dovecot.create_folder(self.user, folder)

    def recreate_folder(self, folder: str = "INBOX") -> tuple[int, int]:
        return self.dovecot.recreate_folder(self.user, folder)

    def list_uids(self, folder: str = "INBOX") -> list[int]:
        return self.dovecot.list_uids(self.user, folder)

    def fetch_flags(self, folder: str = "INBOX") -> dict[int, frozenset[str]]:
        return self.dovecot.fetch_flags(self.user, folder)

    def client(self) -> Any:
        """A logged-in stdlib client (context manager) to flag, move or expunge behind maildesk's back."""
        return self.dovecot.client(self.user, self.password)


@pytest.fixture
def imap_account(dovecot: Dovecot) -> ImapAccount:
    user = f"u{secrets.token_hex(6)}"
    password = secrets.token_urlsafe(12)
    dovecot.add_user(user, password)
    return ImapAccount(dovecot.host, dovecot.imap_port, user, password, dovecot)


@pytest.fixture
def smtp_sink_factory(tmp_path: Path) -> Iterator[Callable[..., SmtpSink]]:
    """Start sinks with custom options (``smtp_sink_factory(auth=("u", "p"))``); stopped after the test."""
    started: list[SmtpSink] = []

    def make(**kwargs: Any) -> SmtpSink:
        kwargs.setdefault("log_path", tmp_path / f"sink-{len(started)}.jsonl")
        sink = SmtpSink(**kwargs)
        started.append(sink)
        return sink.start()

    try:
        yield make
    finally:
        for sink in started:
            sink.stop()


@pytest.fixture
def smtp_sink(smtp_sink_factory: Callable[..., SmtpSink]) -> SmtpSink:
    """A plain sink (no AUTH, no TLS) logging to ``tmp_path/sink-0.jsonl``."""
    return smtp_sink_factory()


@pytest.fixture
def tcp_proxy() -> Iterator[Callable[..., TcpProxy]]:
    """``tcp_proxy(upstream_host, upstream_port)`` starts a fault proxy; all stopped after the test."""
    started: list[TcpProxy] = []

    def make(upstream_host: str, upstream_port: int, **kwargs: Any) -> TcpProxy:
        proxy = TcpProxy(upstream_host, upstream_port, **kwargs)
        started.append(proxy)
        return proxy.start()

    try:
        yield make
    finally:
        for proxy in started:
            proxy.stop()


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A SQLAlchemy URL of a new, empty database, dropped after the test; skips if PostgreSQL is absent."""
    psycopg = pytest.importorskip("psycopg")
    from sqlalchemy.engine import make_url

    base = make_url(os.environ.get("MAILDESK_TEST_PG_URL", DEFAULT_PG_URL))
    admin = _libpq_conninfo(base)
    try:
        conn = psycopg.connect(admin, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL at {base.render_as_string(hide_password=True)} does not answer: {exc}")
    name = f"maildesk_test_{secrets.token_hex(6)}"
    with conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _libpq_conninfo(url: Any) -> str:
    """Turn a SQLAlchemy URL (``postgresql+psycopg://...``) into a libpq URL psycopg accepts."""
    return url.set(drivername="postgresql").render_as_string(hide_password=False)
