"""The SMTP edge: the only module that uses aiosmtplib.

Sends finished mails over one connection per batch, or, inside
``with transport.connection():``, over one connection (and one event loop)
for every batch of the block, checked with NOOP before each batch and opened
again when it broke.  TLS is verified by default; ``starttls`` mode fails rather than continue in clear text.  Foreign
exceptions leave as ``TemporaryDeliveryError`` (4xx, connection trouble,
timeouts: retry) or ``PermanentDeliveryError`` (5xx: dead letter).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import aiosmtplib

from maildesk.config import ServerSettings
from maildesk.errors import DeliveryError, PermanentDeliveryError, TemporaryDeliveryError
from maildesk.faults import crashpoint

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Envelope:
    mail_from: str
    recipients: tuple[str, ...]
    raw: bytes = field(repr=False)


@dataclass(frozen=True)
class SendResult:
    """Per mail: accepted recipients, and refused ones with their reply."""

    accepted: tuple[str, ...] = ()
    refused: dict[str, tuple[int, str]] = field(default_factory=dict)
    error: DeliveryError | None = None


class SmtpTransport:
    def __init__(self, settings: ServerSettings, password: str | None) -> None:
        self.settings = settings
        self._password = password
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None  # set inside ``connection()``
        self._client: aiosmtplib.SMTP | None = None

    @contextmanager
    def connection(self) -> Iterator[None]:
        """Batches sent inside the block share one event loop and one SMTP connection; QUIT at the end.

        A new loop and a TLS handshake per 50 mails cost more than the mails; the connection is
        still opened lazily, checked before each batch, and replaced after any failure.
        """
        with self._lock:
            self._loop = asyncio.new_event_loop()
        try:
            yield
        finally:
            with self._lock:
                loop, client, self._loop, self._client = self._loop, self._client, None, None
                try:
                    if client is not None:
                        loop.run_until_complete(_quit(client))
                finally:
                    loop.close()

    def send_batch(self, mails: Sequence[Envelope],
                   on_result: Callable[[int, SendResult], None] | None = None) -> list[SendResult]:
        """Send ``mails`` over one connection; a connection failure fails the rest temporarily.

        ``on_result(index, result)`` is called right after each mail's reply, so
        the caller can record a 250 before the next mail starts.
        """
        with self._lock:
            batch = self._send_batch(mails, on_result or (lambda _i, _r: None))
            if self._loop is None:
                return asyncio.run(batch)
            return self._loop.run_until_complete(batch)

    async def _open(self) -> aiosmtplib.SMTP:
        """The kept connection if it still answers NOOP, else a new one (kept when inside ``connection()``)."""
        client, self._client = self._client, None
        if client is not None:
            try:
                if client.is_connected:
                    await client.noop()
                    self._client = client
                    return client
            except (TimeoutError, aiosmtplib.SMTPException, OSError):
                pass
            client.close()
        client = await self._connect()
        if self._loop is not None:
            self._client = client
        return client

    async def _send_batch(self, mails: Sequence[Envelope],
                          on_result: Callable[[int, SendResult], None]) -> list[SendResult]:
        results: list[SendResult] = []
        try:
            client = await self._open()
        except DeliveryError as exc:
            results = [SendResult(error=exc) for _ in mails]
            for index, result in enumerate(results):
                on_result(index, result)
            return results
        try:
            for index, mail in enumerate(mails):
                result = await self._send_one(client, mail)
                results.append(result)
                on_result(index, result)
                if isinstance(result.error, TemporaryDeliveryError) and not client.is_connected:
                    for rest in range(index + 1, len(mails)):
                        results.append(SendResult(error=result.error))
                        on_result(rest, results[-1])
                    break
        except BaseException:
            self._client = None  # a crash or a failing callback: this connection is not reused
            await _quit(client)
            raise
        if self._client is not client:
            await _quit(client)
        elif not client.is_connected:
            self._client = None
        return results

    async def _connect(self) -> aiosmtplib.SMTP:
        s = self.settings
        context = ssl.create_default_context(cafile=s.ca_file) if s.security != "none" else None
        client = aiosmtplib.SMTP(
            hostname=s.host, port=s.port, timeout=s.timeout.total_seconds(),
            use_tls=s.security == "tls", start_tls=s.security == "starttls",
            tls_context=context, validate_certs=s.security != "none",
        )
        try:
            await client.connect()
            if s.user:
                await client.login(s.user, self._password or "")
        except aiosmtplib.SMTPAuthenticationError as exc:
            await _quit(client)
            raise PermanentDeliveryError(f"SMTP login refused for {s.user!r}: {exc.code}", exc.code) from None
        except (TimeoutError, aiosmtplib.SMTPException, OSError) as exc:
            await _quit(client)
            raise _translate(exc, f"{s.host}:{s.port}") from None
        return client

    async def _send_one(self, client: aiosmtplib.SMTP, mail: Envelope) -> SendResult:
        """MAIL, RCPT per recipient, DATA: refusals are per recipient, like Mailman's delivery model."""
        try:
            await client.mail(mail.mail_from)
            refused: dict[str, tuple[int, str]] = {}
            for recipient in mail.recipients:
                try:
                    await client.rcpt(recipient)
                except aiosmtplib.SMTPRecipientRefused as exc:
                    refused[recipient] = (exc.code, exc.message)
            accepted = tuple(r for r in mail.recipients if r not in refused)
            if not accepted:
                await _reset(client)
                return SendResult(refused=refused, error=_refusal_error(refused))
            crashpoint("smtp_data_sent")
            await client.data(mail.raw)
        except (TimeoutError, aiosmtplib.SMTPException, OSError) as exc:
            await _reset(client)
            return SendResult(error=_translate(exc, "sending"))
        return SendResult(accepted=accepted, refused=refused)


async def _reset(client: aiosmtplib.SMTP) -> None:
    """Abort the transaction in hand so the next mail starts clean on the same connection."""
    try:
        if client.is_connected:
            await client.rset()
    except (TimeoutError, aiosmtplib.SMTPException, OSError):
        client.close()


def _refusal_error(refused: dict[str, tuple[int, str]]) -> DeliveryError:
    codes = [code for code, _ in refused.values()]
    text = "; ".join(f"{addr}: {code} {msg}" for addr, (code, msg) in refused.items())[:500]
    if codes and all(500 <= c < 600 for c in codes):
        return PermanentDeliveryError(f"all recipients refused: {text}", codes[0])
    return TemporaryDeliveryError(f"recipients refused: {text}", codes[0] if codes else None)


def _translate(exc: BaseException, where: str) -> DeliveryError:
    code = getattr(exc, "code", None)
    message = f"{where}: {exc.__class__.__name__}: {str(exc)[:300]}"
    if isinstance(code, int) and 500 <= code < 600:
        return PermanentDeliveryError(message, code)
    return TemporaryDeliveryError(message, code if isinstance(code, int) else None)


async def _quit(client: aiosmtplib.SMTP) -> None:
    try:
        if client.is_connected:
            await client.quit()
    except Exception:  # noqa: BLE001 - a broken connection may fail to close in any way
        client.close()
