"""IMAP operations that seed and poke at test mailboxes: append (single and bulk), folders, UIDs, flags.

Uses only the standard library (``imaplib`` and, for the bulk path, a plain socket speaking MULTIAPPEND
with LITERAL+), so the tests never depend on the client code under test.  Mail bodies are sent with CRLF
line endings (bare LF is converted, as ``imaplib`` does), which is also what a FETCH returns.
"""

from __future__ import annotations

import base64
import imaplib
import re
import socket
from collections.abc import Iterable, Iterator, Sequence
from types import TracebackType

_APPENDUID = re.compile(rb"\[APPENDUID (\d+) ([\d:,]+)\]")
_UIDVALIDITY = re.compile(rb"UIDVALIDITY (\d+)")
_FETCH_FLAGS = re.compile(rb"UID (\d+) FLAGS \(([^)]*)\)|FLAGS \(([^)]*)\) UID (\d+)")
_BARE_LF = re.compile(rb"(?<!\r)\n")


class ImapOpError(RuntimeError):
    """An IMAP command of the dev-stack helpers got a NO/BAD answer."""


def encode_mailbox(name: str) -> str:
    """Quote ``name`` as an IMAP astring in modified UTF-7 (RFC 3501 5.1.3)."""
    out: list[str] = []
    pending: list[str] = []

    def flush() -> None:
        if pending:
            raw = "".join(pending).encode("utf-16-be")
            out.append("&" + base64.b64encode(raw).decode().rstrip("=").replace("/", ",") + "-")
            pending.clear()

    for char in name:
        if 0x20 <= ord(char) <= 0x7E:
            flush()
            out.append("&-" if char == "&" else char)
        else:
            pending.append(char)
    flush()
    encoded = "".join(out).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{encoded}"'


def to_crlf(raw: bytes) -> bytes:
    return _BARE_LF.sub(b"\r\n", raw)


def parse_uid_set(text: bytes) -> list[int]:
    uids: list[int] = []
    for part in text.split(b","):
        low, _, high = part.partition(b":")
        uids.extend(range(int(low), int(high or low) + 1))
    return uids


def _flag_list(flags: Iterable[str]) -> str:
    flags = tuple(flags)
    return f"({' '.join(flags)})" if flags else ""


class Client:
    """A logged-in ``imaplib.IMAP4`` (:attr:`imap`) with the few operations the tests need."""

    def __init__(self, imap: imaplib.IMAP4) -> None:
        self.imap = imap

    @classmethod
    def login(cls, host: str, port: int, user: str, password: str, timeout: float = 30.0) -> Client:
        imap = imaplib.IMAP4(host, port, timeout=timeout)
        try:
            imap.login(user, password)
        except Exception:
            imap.shutdown()
            raise
        return cls(imap)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            self.imap.logout()
        except (OSError, imaplib.IMAP4.error):
            self.imap.shutdown()

    def _check(self, result: tuple[str, Sequence[object]], what: str) -> Sequence[object]:
        typ, data = result
        if typ != "OK":
            raise ImapOpError(f"{what}: {typ} {data!r}")
        return data

    def append(self, folder: str, raw: bytes, flags: Iterable[str] = ()) -> int | None:
        """APPEND ``raw``; returns its UID from the APPENDUID response code (None if absent)."""
        data = self._check(self.imap.append(encode_mailbox(folder), _flag_list(flags) or None, None, raw),
                           f"APPEND {folder}")
        match = _APPENDUID.search(data[0] if isinstance(data[0], bytes) else b"")
        return parse_uid_set(match.group(2))[-1] if match else None

    def create(self, folder: str) -> None:
        self._check(self.imap.create(encode_mailbox(folder)), f"CREATE {folder}")

    def delete(self, folder: str) -> None:
        self._check(self.imap.delete(encode_mailbox(folder)), f"DELETE {folder}")

    def uidvalidity(self, folder: str) -> int:
        data = self._check(self.imap.status(encode_mailbox(folder), "(UIDVALIDITY)"), f"STATUS {folder}")
        match = _UIDVALIDITY.search(data[0] if isinstance(data[0], bytes) else b"")
        if not match:
            raise ImapOpError(f"STATUS {folder} carried no UIDVALIDITY: {data!r}")
        return int(match.group(1))

    def select(self, folder: str, readonly: bool = True) -> int:
        """SELECT (or EXAMINE when ``readonly``) ``folder``; returns the message count."""
        data = self._check(self.imap.select(encode_mailbox(folder), readonly=readonly), f"SELECT {folder}")
        return int(data[0]) if isinstance(data[0], bytes) else 0

    def uids(self, folder: str) -> list[int]:
        self.select(folder)
        data = self._check(self.imap.uid("SEARCH", "ALL"), f"UID SEARCH {folder}")
        return [int(x) for x in (data[0] or b"").split()] if isinstance(data[0], bytes) else []

    def flags(self, folder: str) -> dict[int, frozenset[str]]:
        if not self.select(folder):
            return {}
        data = self._check(self.imap.uid("FETCH", "1:*", "(FLAGS)"), f"UID FETCH FLAGS {folder}")
        result: dict[int, frozenset[str]] = {}
        for item in data:
            line = item[0] if isinstance(item, tuple) else item
            match = _FETCH_FLAGS.search(line) if isinstance(line, bytes) else None
            if match:
                uid = match.group(1) or match.group(4)
                flags = match.group(2) if match.group(1) else match.group(3)
                result[int(uid)] = frozenset(f.decode() for f in flags.split())
        return result

    def store_flags(self, folder: str, uids: Iterable[int], flags: Iterable[str], add: bool = True) -> None:
        """Add (or remove) ``flags`` on ``uids`` in ``folder``, like another mail client would."""
        self.select(folder, readonly=False)
        uid_set = ",".join(str(u) for u in uids)
        self._check(self.imap.uid("STORE", uid_set, "+FLAGS.SILENT" if add else "-FLAGS.SILENT",
                                  _flag_list(flags)), f"UID STORE {folder}")

    def move(self, folder: str, uids: Iterable[int], target: str) -> None:
        self.select(folder, readonly=False)
        uid_set = ",".join(str(u) for u in uids)
        self._check(self.imap.uid("MOVE", uid_set, encode_mailbox(target)), f"UID MOVE {folder}")

    def expunge(self, folder: str, uids: Iterable[int]) -> None:
        """Flag ``uids`` \\Deleted and UID EXPUNGE exactly them."""
        self.store_flags(folder, uids, ["\\Deleted"])
        uid_set = ",".join(str(u) for u in uids)
        self._check(self.imap.uid("EXPUNGE", uid_set), f"UID EXPUNGE {folder}")


def _batches(raws: Iterable[bytes], size: int) -> Iterator[list[bytes]]:
    batch: list[bytes] = []
    for raw in raws:
        batch.append(raw)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


class _LineReader:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""

    def line(self) -> bytes:
        while b"\r\n" not in self.buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ImapOpError("the IMAP server closed the connection")
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\r\n", 1)
        return line

    def tagged(self, tag: bytes) -> bytes:
        while True:
            line = self.line()
            if line.startswith(tag + b" "):
                if not line.startswith(tag + b" OK"):
                    raise ImapOpError(line.decode(errors="replace"))
                return line


def _quote(value: str) -> bytes:
    return b'"' + value.replace("\\", "\\\\").replace('"', '\\"').encode() + b'"'


def bulk_append(host: str, port: int, user: str, password: str, folder: str, raws: Iterable[bytes],
                flags: tuple[str, ...] = (), *, batch: int = 200, timeout: float = 60.0) -> list[int]:
    """APPEND many mails over one connection, ``batch`` per MULTIAPPEND command; returns their UIDs."""
    if batch < 1:
        raise ValueError("The APPEND batch size must be at least 1")
    flag_part = (_flag_list(flags) + " ").encode() if flags else b""
    uids: list[int] = []
    with socket.create_connection((host, port), timeout=timeout) as sock:
        reader = _LineReader(sock)
        reader.line()  # greeting
        sock.sendall(b"a0 LOGIN " + _quote(user) + b" " + _quote(password) + b"\r\n")
        reader.tagged(b"a0")
        for number, chunk in enumerate(_batches(raws, batch), start=1):
            tag = f"b{number}".encode()
            parts = [tag, b" APPEND ", encode_mailbox(folder).encode()]
            for raw in chunk:
                body = to_crlf(raw)
                if not body:
                    raise ValueError("An empty mail cannot be appended")
                parts += [b" ", flag_part, b"{%d+}\r\n" % len(body), body]
            parts.append(b"\r\n")
            sock.sendall(b"".join(parts))
            match = _APPENDUID.search(reader.tagged(tag))
            if match:
                uids.extend(parse_uid_set(match.group(2)))
        sock.sendall(b"z LOGOUT\r\n")
    return uids
