"""Compare what is on the IMAP server with what is stored, so "nothing lost" can be checked any time.

A mail in the watched folder that is not stored yet is *waiting* (the next poll
takes it).  A mail in the done folder must be stored; one that is not is
*missing* and is listed with its UID and Message-ID.  Mails without a
Message-ID are compared by the SHA-256 of their bytes.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from maildesk.config import MailboxSettings
from maildesk.ingest.imap import Credential, ImapSource
from maildesk.store import queries
from maildesk.store.session import SessionFactory, transaction


@dataclass(frozen=True)
class ReconcileReport:
    mailbox: str
    on_server: int
    waiting: list[int] = field(default_factory=list)
    missing: list[tuple[str, int, str | None]] = field(default_factory=list)
    stored_by_status: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.missing


def reconcile_mailbox(settings: MailboxSettings, credential: Credential, sessions: SessionFactory) -> ReconcileReport:
    with ImapSource(settings, credential) as source:
        uidvalidity = source.uidvalidity()
        inbox = source.message_ids(settings.folder)
        done = source.message_ids(settings.done_folder) if settings.done_action == "move" else []
        with transaction(sessions) as session:
            known = queries.known_uids(session, settings.name, uidvalidity, [uid for uid, _, _ in inbox])
            ids = queries.stored_message_ids(session, [m for _, m, _ in inbox + done if m])
            counts = queries.raw_counts_by_status(session)
        waiting = [uid for uid, mid, _ in inbox if uid not in known and (mid is None or mid not in ids)]
        unverified = [(uid, mid) for uid, mid, _ in done if mid is None or mid not in ids]
        missing = _missing_by_hash(source, settings, unverified, sessions)
    return ReconcileReport(settings.name, len(inbox) + len(done), waiting, missing, counts)


def _missing_by_hash(source: ImapSource, settings: MailboxSettings, candidates: list[tuple[int, str | None]],
                     sessions: SessionFactory) -> list[tuple[str, int, str | None]]:
    if not candidates:
        return []
    source.box.folder.set(settings.done_folder, readonly=True)
    try:
        hashes = {m.uid: hashlib.sha256(m.raw).hexdigest() for m in source.fetch([uid for uid, _ in candidates])}
    finally:
        source.box.folder.set(settings.folder)
    with transaction(sessions) as session:
        stored = queries.stored_hashes(session, list(hashes.values()))
    return [(settings.done_folder, uid, mid) for uid, mid in candidates if hashes.get(uid) not in stored]
