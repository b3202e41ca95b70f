"""Who may poll a mailbox right now, when several daemons share one PostgreSQL.

A session-level advisory lock, held on its own connection for the length of a
poll: if the holder dies, its connection drops and the lock is free at once.
SQLite has one daemon (the daemon holds a file lock), so there it always
succeeds.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

from maildesk.errors import MaildeskError


def lock_key(name: str) -> int:
    """A stable signed 64-bit key for ``name`` (Python's hash() changes between runs)."""
    return int.from_bytes(hashlib.sha256(f"maildesk:{name}".encode()).digest()[:8], "big", signed=True)


@contextmanager
def mailbox_lock(engine: Engine, name: str) -> Iterator[bool]:
    """Yield True if this process holds the lock for ``name`` until the block ends."""
    if engine.dialect.name != "postgresql":
        yield True
        return
    key = lock_key(name)
    with engine.connect() as connection:
        held = bool(connection.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar())
        connection.commit()
        try:
            yield held
        finally:
            if held:
                connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                connection.commit()


class SingleDaemonLock:
    """On SQLite only one daemon may run; an flock dies with its holder, even on kill -9."""

    def __init__(self, database_url: str) -> None:
        url = make_url(database_url)
        self.path = Path(f"{url.database}.lock") if url.get_backend_name() == "sqlite" and url.database else None
        self._fd: int | None = None

    def acquire(self) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            holder = self.path.read_text().strip() or "another process"
            raise MaildeskError(f"another maildesk daemon ({holder}) already uses this SQLite database; "
                                "run one daemon per SQLite file, or use PostgreSQL for several") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()}".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
