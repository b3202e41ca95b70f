"""The IMAP edge: the only module that uses imap-tools.

It fetches raw bytes by UID (``BODY.PEEK[]``, so nothing is marked seen by
fetching), checks each against its ``RFC822.SIZE`` so a cut connection never
yields a partial mail, marks handled mail done (move or flag), and waits for
news with IDLE.  Every foreign exception leaves as ``FetchError`` or
``AuthenticationError``.  Only numeric UID sets ever go into a command.
"""

from __future__ import annotations

import imaplib
import logging
import re
import socket
import ssl
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from imap_tools import MailBox, MailBoxStartTls, MailBoxUnencrypted
from imap_tools.errors import ImapToolsError, MailboxLoginError, MailboxStarttlsError

from maildesk.config import MailboxSettings
from maildesk.errors import AuthenticationError, FetchError

log = logging.getLogger(__name__)

_FETCH_PARTS = "(UID RFC822.SIZE BODY.PEEK[])"
_HEADER_PARTS = "(UID RFC822.SIZE BODY.PEEK[HEADER])"
_UID_RE = re.compile(rb"UID (\d+)")
_SIZE_RE = re.compile(rb"RFC822\.SIZE (\d+)")
_IMAP_ERRORS = (ImapToolsError, imaplib.IMAP4.error, OSError, socket.timeout, ssl.SSLError, EOFError)


@dataclass(frozen=True)
class FetchedMail:
    uid: int
    raw: bytes
    size: int | None = None  # the server's RFC822.SIZE when only the headers were fetched

    @property
    def headers_only(self) -> bool:
        return self.size is not None and self.size > len(self.raw)


def ssl_context(ca_file: str | None) -> ssl.SSLContext:
    """A verifying context: certificate and host name are always checked."""
    context = ssl.create_default_context(cafile=ca_file)
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    return context


Credential = Callable[[], str | None]


class ImapSource:
    """One connection to one folder of one mailbox.

    ``credential`` returns the password, or the OAuth2 access token when the
    mailbox logs in with XOAUTH2; it is asked at every connect because tokens
    expire.
    """

    def __init__(self, settings: MailboxSettings, credential: Credential) -> None:
        self.settings = settings
        self._credential = credential
        self._box: MailBox | MailBoxStartTls | MailBoxUnencrypted | None = None

    def __enter__(self) -> ImapSource:
        self.connect()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    @property
    def label(self) -> str:
        server = self.settings.server
        return f"{self.settings.name} ({server.user}@{server.host}:{server.port}/{self.settings.folder})"

    def connect(self) -> None:
        server = self.settings.server
        timeout = server.timeout.total_seconds()
        try:
            if server.security == "tls":
                box = MailBox(server.host, server.port, timeout=timeout, ssl_context=ssl_context(server.ca_file))
            elif server.security == "starttls":
                box = MailBoxStartTls(server.host, server.port, timeout=timeout,
                                      ssl_context=ssl_context(server.ca_file))
            else:
                box = MailBoxUnencrypted(server.host, server.port, timeout=timeout)
        except _IMAP_ERRORS as exc:
            if server.security == "starttls" and _is_starttls_refusal(exc):
                raise FetchError(f"{self.label}: STARTTLS failed (not offered or refused by the server, or "
                                 f"stripped on the way), so no login in clear text: {_describe(exc)}") from None
            raise FetchError(f"{self.label}: cannot connect: {_describe(exc)}") from None
        try:
            secret = self._credential() or ""
            if server.auth == "xoauth2":
                box.xoauth2(server.user or "", secret, initial_folder=None)
            else:
                box.login(server.user or "", secret, initial_folder=None)
        except MailboxLoginError:
            _quietly_close(box)
            raise AuthenticationError(f"{self.label}: login refused for user {server.user!r}") from None
        except _IMAP_ERRORS as exc:
            _quietly_close(box)
            raise FetchError(f"{self.label}: login failed: {_describe(exc)}") from None
        self._box = box
        self._select()

    def _select(self) -> None:
        try:
            self.box.folder.set(self.settings.folder)
        except _IMAP_ERRORS as exc:
            raise FetchError(f"{self.label}: cannot select folder: {_describe(exc)}") from None

    @property
    def box(self) -> MailBox | MailBoxStartTls | MailBoxUnencrypted:
        if self._box is None:
            raise FetchError(f"{self.label}: not connected")
        return self._box

    def close(self) -> None:
        if self._box is not None:
            _quietly_close(self._box)
            self._box = None

    def uidvalidity(self) -> int:
        try:
            status = self.box.folder.status(self.settings.folder, ["UIDVALIDITY"])
        except _IMAP_ERRORS as exc:
            raise FetchError(f"{self.label}: STATUS failed: {_describe(exc)}") from None
        return int(status["UIDVALIDITY"])

    def candidate_uids(self) -> list[int]:
        """UIDs of mail that may not be handled yet, oldest first.

        In flag mode only mail without our keyword; a system flag such as
        ``\\Seen`` is never trusted (a person reading a mail must not hide it
        from us), so then every UID is listed and the store filters.
        """
        flag = self.settings.done_flag
        criteria = "ALL"
        if self.settings.done_action == "flag" and not flag.startswith("\\"):
            criteria = f"UNKEYWORD {flag}"
        try:
            return sorted(int(uid) for uid in self.box.uids(criteria))
        except _IMAP_ERRORS as exc:
            raise FetchError(f"{self.label}: SEARCH failed: {_describe(exc)}") from None

    def sizes(self, uids: Sequence[int]) -> dict[int, int]:
        """RFC822.SIZE of each of ``uids`` still there, without fetching any body."""
        if not uids:
            return {}
        found: dict[int, int] = {}
        for item in self._uid_fetch(uids, "(UID RFC822.SIZE)"):
            line = item[0] if isinstance(item, tuple) else item
            if not isinstance(line, bytes):
                continue
            uid, size = _UID_RE.search(line), _SIZE_RE.search(line)
            if uid is not None and size is not None:
                found[int(uid.group(1))] = int(size.group(1))
        return found

    def fetch(self, uids: Sequence[int]) -> Iterator[FetchedMail]:
        """Raw bytes of ``uids``, checked against the size the server announced."""
        for uid, size, raw in self._literals(uids, _FETCH_PARTS):
            if size is not None and size != len(raw):
                raise FetchError(f"{self.label}: UID {uid} arrived with {len(raw)} of {size} bytes")
            yield FetchedMail(uid, raw)

    def fetch_headers(self, uids: Sequence[int], sizes: Mapping[int, int]) -> Iterator[FetchedMail]:
        """Only the header block of each of ``uids`` (for mails too big to take), with the size ``sizes``
        gives (the server may put RFC822.SIZE after the literal, where this parse does not look)."""
        for uid, size, raw in self._literals(uids, _HEADER_PARTS):
            yield FetchedMail(uid, raw, size=size or sizes.get(uid) or len(raw) + 1)

    def _literals(self, uids: Sequence[int], parts: str) -> Iterator[tuple[int, int | None, bytes]]:
        for item in self._uid_fetch(uids, parts):
            if not isinstance(item, tuple) or len(item) < 2:
                continue
            uid, size = _UID_RE.search(item[0]), _SIZE_RE.search(item[0])
            if uid is not None:
                yield int(uid.group(1)), int(size.group(1)) if size else None, item[1]

    def _uid_fetch(self, uids: Sequence[int], parts: str) -> list[object]:
        if not uids:
            return []
        uid_set = ",".join(str(int(uid)) for uid in uids)
        try:
            status, data = self.box.client.uid("FETCH", uid_set, parts)
        except _IMAP_ERRORS as exc:
            raise FetchError(f"{self.label}: FETCH failed: {_describe(exc)}") from None
        if status != "OK":
            raise FetchError(f"{self.label}: FETCH answered {status}")
        return list(data)

    def mark_done(self, uids: Sequence[int]) -> None:
        if not uids:
            return
        uid_list = [str(int(uid)) for uid in uids]
        try:
            if self.settings.done_action == "move":
                self._ensure_folder(self.settings.done_folder)
                self.box.move(uid_list, self.settings.done_folder)
            else:
                self.box.flag(uid_list, self.settings.done_flag, True)
        except _IMAP_ERRORS as exc:
            raise FetchError(f"{self.label}: marking {len(uid_list)} mails done failed: {_describe(exc)}") from None

    def _ensure_folder(self, folder: str) -> None:
        if not self.box.folder.exists(folder):
            self.box.folder.create(folder)

    def message_ids(self, folder: str) -> list[tuple[int, str | None, int]]:
        """(UID, Message-ID, size) of every mail in ``folder``, for reconciling."""
        try:
            if not self.box.folder.exists(folder):
                return []
            self.box.folder.set(folder, readonly=True)
            status, data = self.box.client.uid(
                "FETCH", "1:*", "(UID RFC822.SIZE BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
        except _IMAP_ERRORS as exc:
            raise FetchError(f"{self.label}: listing {folder} failed: {_describe(exc)}") from None
        finally:
            self._select()
        if status != "OK":
            raise FetchError(f"{self.label}: FETCH answered {status}")
        found = []
        for item in data:
            if isinstance(item, tuple) and len(item) >= 2:
                uid, size = _UID_RE.search(item[0]), _SIZE_RE.search(item[0])
                header = item[1].decode("ascii", "replace").partition(":")[2].strip().strip("<>")
                if uid is not None:
                    found.append((int(uid.group(1)), header or None, int(size.group(1)) if size else 0))
        return found

    def supports_idle(self) -> bool:
        return "IDLE" in getattr(self.box.client, "capabilities", ())

    def wait_for_news(self, timeout: float) -> bool:
        """Block in IDLE up to ``timeout`` seconds; True when the server reported a change."""
        try:
            responses = self.box.idle.wait(timeout=timeout)
        except _IMAP_ERRORS as exc:
            raise FetchError(f"{self.label}: IDLE failed: {_describe(exc)}") from None
        return any(b"EXISTS" in r or b"RECENT" in r for r in responses)


def _quietly_close(box: MailBox | MailBoxStartTls | MailBoxUnencrypted) -> None:
    try:
        box.logout()
    except Exception:  # noqa: BLE001 - closing a broken connection may fail in any way
        try:
            box.client.shutdown()
        except Exception:  # noqa: BLE001
            log.debug("closing IMAP connection failed", exc_info=True)


def _is_starttls_refusal(exc: BaseException) -> bool:
    """imaplib's "TLS not supported by server" (no STARTTLS capability) or a NO/BAD answer to STARTTLS."""
    return isinstance(exc, MailboxStarttlsError) or (
        isinstance(exc, imaplib.IMAP4.error) and "TLS" in str(exc))


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{exc.__class__.__name__}: {text}"[:300]
