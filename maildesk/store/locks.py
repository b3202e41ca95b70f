"""Who may poll a mailbox right now, when several daemons share one PostgreSQL.

A session-level advisory lock, held on its own connection for the length of a
poll: if the holder dies, its connection drops and the lock is free at once.
SQLite has one daemon (the daemon holds a file lock), so there it always
succeeds.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, text


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
