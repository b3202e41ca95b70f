"""An SMTP server (aiosmtpd) that keeps what it receives and can be scripted to fail.

Every accepted mail is kept as a :class:`ReceivedMail` (envelope, raw bytes, monotonic and wall time of the
250 reply); optionally one JSON line per mail is appended to ``log_path`` and the mail is written as an
``.eml`` file into ``eml_dir``.  Faults for the reliability tests:

- ``script(command, replies)``: the next replies to ``CONNECT``, ``EHLO``, ``MAIL``, ``RCPT``, ``DATA``
  (the command) or ``.`` (end of data), consumed in order.  A reply is an SMTP line (``"451 4.3.0 try
  later"``), ``None``/``"pass"`` (behave normally), ``"hang"`` (for ``.``: keep the mail as delivered but
  answer only after ``hang_seconds`` — the duplicate window) or ``"hang-drop"`` (wait, keep nothing, drop
  the connection).  A ``CONNECT`` reply is sent as greeting and the connection closed.
- ``rcpt_replies``: a permanent reply per recipient address (e.g. ``550 5.1.1`` for a bouncing one).
- ``delay_seconds``: answer the end of data after a fixed delay or one drawn (seeded) from a range.
- ``down()``/``up()``: close the listening port (connections refused) and open it again on the same port.
- AUTH PLAIN/LOGIN against one user/password; STARTTLS or implicit TLS with a :class:`TestCA` certificate.

What is kept lives in :mod:`devstack.sinkstore`.
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
import threading
import warnings
from collections import defaultdict, deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from types import TracebackType
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from devstack.net import LOOPBACK, free_port
from devstack.sinkstore import MailStore, ReceivedMail

log = logging.getLogger(__name__)

COMMANDS = ("CONNECT", "EHLO", "MAIL", "RCPT", "DATA", ".")


@dataclass
class _Script:
    replies: dict[str, deque[str | None]] = field(default_factory=lambda: defaultdict(deque))
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next(self, command: str) -> str | None:
        with self.lock:
            queue = self.replies.get(command)
            reply = queue.popleft() if queue else None
        return None if reply in (None, "pass") else reply


class _SinkSMTP(SMTP):
    """aiosmtpd's SMTP with hooks for the CONNECT and DATA-command faults."""

    def __init__(self, handler: _Handler, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self._sink_handler = handler

    async def _handle_client(self) -> None:
        self._sink_handler.sink._count_connection()
        reply = self._sink_handler.script.next("CONNECT")
        if reply is not None:
            if reply.startswith("hang"):
                await asyncio.sleep(self._sink_handler.sink.hang_seconds)
            else:
                await self.push(reply)
            if self.transport is not None:
                self.transport.close()
            return
        await super()._handle_client()

    async def smtp_DATA(self, arg: str) -> None:
        reply = self._sink_handler.script.next("DATA")
        if reply is None:
            await super().smtp_DATA(arg)
        elif reply.startswith("hang"):
            await asyncio.sleep(self._sink_handler.sink.hang_seconds)
            if self.transport is not None:
                self.transport.close()
        else:
            await self.push(reply)


class _Handler:
    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink
        self.script = _Script()

    async def handle_EHLO(self, server: SMTP, session: Session, envelope: Envelope, hostname: str,
                          responses: list[str]) -> list[str]:
        reply = self.script.next("EHLO")
        if reply is not None:
            return [reply]
        session.host_name = hostname
        return responses

    async def handle_MAIL(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          mail_options: list[str]) -> str:
        reply = self.script.next("MAIL")
        if reply is not None:
            return reply
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          rcpt_options: list[str]) -> str:
        reply = self.script.next("RCPT") or self.sink.rcpt_replies.get(address.lower())
        if reply is not None:
            return reply
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        reply = self.script.next(".")
        if reply == "hang-drop":
            await asyncio.sleep(self.sink.hang_seconds)
            if server.transport is not None:
                server.transport.close()
            return "451 4.3.0 dropped"
        if reply is not None and reply != "hang":
            return reply
        delay = self.sink.next_delay()
        if delay:
            await asyncio.sleep(delay)
        auth = session.auth_data
        user = auth.login.decode() if isinstance(auth, LoginPassword) else None
        mail = self.sink._store.add(envelope.mail_from or "", tuple(envelope.rcpt_tos),
                                    envelope.original_content or b"", str(session.peer), user)
        if reply == "hang":
            await asyncio.sleep(self.sink.hang_seconds)
        return f"250 2.0.0 Ok: queued as {mail.sha256[:12]}"


class SmtpSink:
    """The SMTP sink on 127.0.0.1.  ``start()``/``stop()`` or use it as a context manager."""

    def __init__(
        self,
        *,
        port: int | None = None,
        log_path: str | Path | None = None,
        eml_dir: str | Path | None = None,
        auth: tuple[str, str] | None = None,
        tls_context: ssl.SSLContext | None = None,
        implicit_tls: bool = False,
        require_starttls: bool = False,
        script: dict[str, Iterable[str | None]] | None = None,
        rcpt_replies: dict[str, str] | None = None,
        hang_seconds: float = 60.0,
        delay_seconds: float | tuple[float, float] = 0.0,
        seed: int | None = None,
        data_size_limit: int = 64 * 1024 * 1024,
    ) -> None:
        if implicit_tls and tls_context is None:
            raise ValueError("Implicit TLS needs a tls_context")
        low, high = delay_seconds if isinstance(delay_seconds, tuple) else (delay_seconds, delay_seconds)
        if hang_seconds < 0 or low < 0 or high < low:
            raise ValueError("hang_seconds and the delay must not be negative (and the delay range ordered)")
        self.host = LOOPBACK
        self.port = port or 0
        self.log_path = Path(log_path) if log_path else None
        self.eml_dir = Path(eml_dir) if eml_dir else None
        self._store = MailStore(self.log_path, self.eml_dir)
        self.auth = auth
        self.tls_context = tls_context
        self.implicit_tls = implicit_tls
        self.require_starttls = require_starttls
        self.rcpt_replies = {k.lower(): v for k, v in (rcpt_replies or {}).items()}
        self.hang_seconds = hang_seconds
        self.delay_seconds = (low, high)
        self._random = random.Random(seed)
        self.data_size_limit = data_size_limit
        self.connections = 0
        self._initial_script = dict(script or {})
        self._handler = _Handler(self)
        self._lock = threading.Lock()
        self._controller: Controller | None = None

    # ----------------------------------------------------------------- lifecycle
    def start(self) -> SmtpSink:
        if self._controller is not None:
            return self
        self._store.prepare()
        self.port = self.port or free_port()
        self._controller = self._make_controller()
        self._controller.start()
        with self._lock:
            self.connections = 0  # the controller's own start-up probe does not count
        for command, replies in self._initial_script.items():
            self.script(command, replies)
        self._initial_script = {}
        log.info("smtp sink listening on %s:%s", self.host, self.port)
        return self

    def _make_controller(self) -> Controller:
        sink = self
        kwargs: dict[str, Any] = {
            "hostname": "sink.devstack.test", "data_size_limit": self.data_size_limit,
            "enable_SMTPUTF8": True, "timeout": 300,
        }
        if self.auth:
            kwargs.update(authenticator=self._authenticate, auth_required=True, auth_require_tls=False)
        if self.tls_context and not self.implicit_tls:
            kwargs.update(tls_context=self.tls_context, require_starttls=self.require_starttls)

        class _Controller(Controller):
            def factory(self) -> SMTP:
                with warnings.catch_warnings():  # AUTH without TLS is intended on loopback
                    warnings.simplefilter("ignore", UserWarning)
                    return _SinkSMTP(sink._handler, **kwargs)

        return _Controller(self._handler, hostname=self.host, port=self.port, ready_timeout=10.0,
                           ssl_context=self.tls_context if self.implicit_tls else None)

    def stop(self) -> None:
        controller, self._controller = self._controller, None
        if controller is not None:
            controller.stop()

    def down(self) -> None:
        """Close the port: new connections are refused until :meth:`up` (kept mail stays)."""
        self.stop()

    def up(self) -> None:
        """Listen again on the same port after :meth:`down`."""
        self.start()

    def __enter__(self) -> SmtpSink:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # ----------------------------------------------------------------- faults
    def script(self, command: str, replies: Iterable[str | None]) -> None:
        """Queue replies for ``command`` (one of CONNECT, EHLO, MAIL, RCPT, DATA, '.')."""
        command = command.upper()
        if command not in COMMANDS:
            raise ValueError(f"Unknown SMTP command {command!r} to script; use one of {COMMANDS}")
        with self._handler.script.lock:
            self._handler.script.replies[command].extend(replies)

    def clear_script(self) -> None:
        with self._handler.script.lock:
            self._handler.script.replies.clear()

    def _authenticate(self, server: SMTP, session: Session, envelope: Envelope, mechanism: str,
                      auth_data: Any) -> AuthResult:
        ok = (isinstance(auth_data, LoginPassword) and self.auth is not None
              and auth_data.login.decode() == self.auth[0] and auth_data.password.decode() == self.auth[1])
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)

    def next_delay(self) -> float:
        """Seconds to wait before answering the end of data (uniform in the configured range, seeded)."""
        low, high = self.delay_seconds
        with self._lock:
            return low if low == high else self._random.uniform(low, high)

    def _count_connection(self) -> None:
        with self._lock:
            self.connections += 1

    # ----------------------------------------------------------------- what was kept
    @property
    def received(self) -> list[ReceivedMail]:
        """A snapshot of the kept mails, oldest first."""
        return self._store.snapshot()

    def messages(self) -> list[EmailMessage]:
        """The kept mails parsed with ``email.policy.default``."""
        return [mail.message() for mail in self.received]

    def clear(self) -> None:
        self._store.clear()

    def wait_for(self, count: int, timeout: float = 10.0) -> list[ReceivedMail]:
        """Block until at least ``count`` mails were kept; TimeoutError (naming what arrived) otherwise."""
        return self._store.wait_for(count, timeout)
