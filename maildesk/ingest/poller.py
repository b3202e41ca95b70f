"""One polling cycle of one mailbox: fetch what is new, store it raw, mark it done.

The order is the promise "nothing lost, nothing doubled": raw bytes are
committed before the mail is marked done on the server, and a UID already in
the store is never stored again (it is only marked done, in case a crash came
between the commit and the mark).  Processing the stored mail is the ingest
runner's job and happens from the database.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from maildesk.config import MailboxSettings
from maildesk.domain import Clock
from maildesk.errors import AuthenticationError, FetchError
from maildesk.faults import crashpoint
from maildesk.ingest.imap import Credential, ImapSource
from maildesk.ingest.runner import IngestRunner
from maildesk.store import queries
from maildesk.store.locks import mailbox_lock
from maildesk.store.models import MailboxState
from maildesk.store.session import SessionFactory, transaction
from maildesk.tickets import service

log = logging.getLogger(__name__)

# Even with ``oversize = "keep"``, a mail beyond this keeps only its headers: a database row (SQLite blob,
# PostgreSQL bytea) must stay well under its 1 GB limits.
KEEP_AT_MOST = 256 * 1024 * 1024
BACKOFF_START = timedelta(seconds=1)
BACKOFF_MAX = timedelta(seconds=60)


@dataclass(frozen=True)
class PollReport:
    fetched: int = 0
    already_stored: int = 0
    error: str | None = None
    skipped: str | None = None


class MailboxPoller:
    def __init__(
        self,
        *,
        settings: MailboxSettings,
        credential: Credential,
        sessions: SessionFactory,
        clock: Clock,
        runner: IngestRunner,
        source_factory: Callable[[MailboxSettings, Credential], ImapSource] = ImapSource,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.clock = clock
        self.runner = runner
        self.credential = credential
        self._factory = source_factory
        self._source: ImapSource | None = None
        self._failures = 0
        self._retry_at: datetime | None = None
        self.lock = threading.Lock()

    def poll_once(self, stop: threading.Event | None = None) -> PollReport:
        """Fetch and store everything new; reconnect with backoff after a failure."""
        with self.lock, mailbox_lock(self.sessions.kw["bind"], f"mailbox:{self.settings.name}") as held:
            if not held:
                return PollReport(skipped="another daemon is polling this mailbox")
            if self._retry_at is not None and self.clock.now() < self._retry_at:
                return PollReport(skipped="waiting before reconnecting")
            try:
                report = self._poll(stop)
            except FetchError as exc:
                self._fail(exc)
                return PollReport(error=str(exc))
            finally:
                # A fresh SELECT per poll sees every mail delivered since; a kept-open
                # view can lag (maildir mtimes) or go stale. IDLE has its own connection.
                self.disconnect()
            self._failures, self._retry_at = 0, None
            self._record_state(error=None)
            return report

    def _poll(self, stop: threading.Event | None) -> PollReport:
        source = self._connected()
        uidvalidity = source.uidvalidity()
        self._check_uidvalidity(uidvalidity)
        fetched = known = 0
        uids = source.candidate_uids()
        for start in range(0, len(uids), self.settings.batch_size):
            if stop and stop.is_set():
                break
            batch = uids[start:start + self.settings.batch_size]
            with transaction(self.sessions) as session:
                stored_before = queries.known_uids(session, self.settings.name, uidvalidity, batch)
            new = [uid for uid in batch if uid not in stored_before]
            stored = self._store(source, uidvalidity, new)
            crashpoint("raw_committed")
            missing = set(new) - set(stored)
            if missing:
                log.warning("%s: %d UIDs vanished before fetch (moved or expunged by someone else): %s",
                            source.label, len(missing), sorted(missing)[:20])
            crashpoint("applied_not_flagged")
            source.mark_done(sorted(stored_before | set(stored)))
            fetched, known = fetched + len(stored), known + len(stored_before)
        if fetched:
            log.info("%s: stored %d new mails (%d were stored before)", source.label, fetched, known)
        return PollReport(fetched=fetched, already_stored=known)

    def _store(self, source: ImapSource, uidvalidity: int, uids: list[int]) -> list[int]:
        """Fetch and commit ``uids``; a mail over the size limit comes alone, or only its headers do."""
        if not uids:
            return []
        desk = self.runner.settings
        sizes = source.sizes(uids)
        big = [uid for uid in uids if sizes.get(uid, 0) > desk.max_mail_size]
        if not big:  # the usual case: one bulk FETCH
            return self.runner.store_fetched(self.settings.name, uidvalidity, source.fetch(uids))
        log.warning("%s: %d mails over the %d-byte limit (UIDs %s); %s", source.label, len(big),
                    desk.max_mail_size, big[:20], "keeping their headers only" if desk.oversize == "headers"
                    else "fetching them one at a time")
        small = [uid for uid in uids if uid not in big]
        stored = self.runner.store_fetched(self.settings.name, uidvalidity, source.fetch(small))
        for uid in big:  # one at a time, so a batch of them never sits in memory together
            whole = desk.oversize == "keep" and sizes[uid] <= KEEP_AT_MOST
            fetched = source.fetch([uid]) if whole else source.fetch_headers([uid], sizes)
            stored += self.runner.store_fetched(self.settings.name, uidvalidity, fetched)
        return sorted(stored)

    def _connected(self) -> ImapSource:
        if self._source is None:
            source = self._factory(self.settings, self.credential)
            source.connect()
            self._source = source
        return self._source

    def _check_uidvalidity(self, uidvalidity: int) -> None:
        with transaction(self.sessions) as session:
            state = session.get(MailboxState, self.settings.name)
            if state is None:
                session.add(MailboxState(mailbox=self.settings.name, uidvalidity=uidvalidity))
                return
            if state.uidvalidity is not None and state.uidvalidity != uidvalidity:
                # UIDs of the old generation mean nothing now; Message-ID dedup keeps
                # re-fetched copies from becoming second tickets.
                log.warning("%s: UIDVALIDITY changed from %s to %s; rescanning the folder",
                            self.settings.name, state.uidvalidity, uidvalidity)
                service.record_event(session, None, "uidvalidity_changed", "maildesk", self.clock.now(),
                                     mailbox=self.settings.name, old=state.uidvalidity, new=uidvalidity)
            state.uidvalidity = uidvalidity

    def _fail(self, exc: FetchError) -> None:
        self.disconnect()
        self._failures += 1
        delay = min(BACKOFF_START * 2 ** (self._failures - 1), BACKOFF_MAX)
        self._retry_at = self.clock.now() + delay
        level = logging.ERROR if isinstance(exc, AuthenticationError) else logging.WARNING
        log.log(level, "%s: %s (failure %d, next try in %ss)", self.settings.name, exc, self._failures,
                int(delay.total_seconds()))
        try:
            self._record_state(error=str(exc))
            if isinstance(exc, AuthenticationError):
                day = self.clock.now().date().isoformat()
                self.runner.alert_admins(f"mailbox {self.settings.name}: login refused", str(exc),
                                         key=f"imap-auth:{self.settings.name}:{day}")
        except Exception:  # noqa: BLE001 - the database may be down too; the log line above stands
            log.debug("could not record mailbox error", exc_info=True)

    def _record_state(self, error: str | None) -> None:
        with transaction(self.sessions) as session:
            state = session.get(MailboxState, self.settings.name)
            if state is None:
                state = MailboxState(mailbox=self.settings.name)
                session.add(state)
            state.last_error = error[:2000] if error else None
            if error is None:
                state.last_poll_at = self.clock.now()

    def disconnect(self) -> None:
        if self._source is not None:
            self._source.close()
            self._source = None
