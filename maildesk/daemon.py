"""The composition root: builds everything from the settings and runs it.

APScheduler only triggers runners; every runner asks the database what is
due, so a restart loses and doubles nothing.  Jobs: one poll per mailbox
(woken early by its IDLE watcher), the outbox sender, and the rule reloader.
SIGTERM and SIGINT finish the mail in hand and stop.
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import socket
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jinja2
from apscheduler.schedulers.background import BackgroundScheduler

from maildesk.clock import SystemClock
from maildesk.config import MailboxSettings, ServerSettings, Settings
from maildesk.domain import Clock
from maildesk.errors import ConfigError, FetchError, MaildeskError
from maildesk.health import serve_metrics
from maildesk.ingest.imap import Credential, ImapSource
from maildesk.ingest.poller import MailboxPoller
from maildesk.ingest.route import lifecycle_from
from maildesk.ingest.runner import IngestRunner
from maildesk.outbound.notifier import INSTALLATION_SECRETS
from maildesk.outbound.render import build_environment
from maildesk.outbound.sender import OutboxSender
from maildesk.outbound.smtp import SmtpTransport
from maildesk.reports.schedule import send_scheduled_reports
from maildesk.rules.policy import RulesPolicy
from maildesk.sla.sweep import Sweeper
from maildesk.store import migrate, queries
from maildesk.store.locks import SingleDaemonLock
from maildesk.store.session import SessionFactory, is_sqlite, make_engine, make_session_factory, transaction

log = logging.getLogger(__name__)

DEFAULT_TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
IDLE_WAIT_SECONDS = 5.0
HEARTBEAT_SECONDS = 10
SWEEP_SECONDS = 30
PROCESS_PER_RUN = 500  # mails per poll run before the job yields to sending and sweeping
RULES_CHECK_SECONDS = 5


def secret_from_env(name: str | None, what: str, environ: dict[str, str] | None = None) -> str | None:
    """The secret named by the settings, from the environment only."""
    if not name:
        return None
    env = os.environ if environ is None else environ
    if name not in env:
        raise ConfigError(f"{what}: environment variable {name} is not set")
    return env[name]


def imap_credential(server: ServerSettings, what: str, environ: dict[str, str] | None = None) -> Credential:
    """How a mailbox proves who it is: a password from the environment, or an OAuth2 token.

    A token is fetched again at every connect (from its variable, or by running
    ``token_command``), since access tokens expire within the hour.
    """
    env = os.environ if environ is None else environ
    if server.auth != "xoauth2":
        return lambda: secret_from_env(server.password_env, what, env)
    if server.token_env:
        name = server.token_env
        return lambda: env.get(name)

    def run_command() -> str | None:
        try:
            result = subprocess.run(list(server.token_command), capture_output=True, text=True, timeout=30,
                                    check=True)
        except (OSError, subprocess.SubprocessError) as exc:
            raise FetchError(f"{what}: token command {server.token_command[0]!r} failed: "
                             f"{exc.__class__.__name__}") from None
        return result.stdout.strip() or None

    return run_command


def template_environment(settings: Settings, base_dir: Path) -> jinja2.Environment:
    folder = Path(settings.templates_dir) if settings.templates_dir else DEFAULT_TEMPLATES
    if not folder.is_absolute():
        folder = base_dir / folder
    return build_environment(jinja2.FileSystemLoader(str(folder)))


@dataclass
class Desk:
    """Everything the daemon runs, built once from the settings."""

    settings: Settings
    sessions: SessionFactory
    clock: Clock
    policy: RulesPolicy
    runner: IngestRunner
    sender: OutboxSender
    pollers: list[MailboxPoller]
    sweeper: Sweeper
    daemon_id: str = ""
    stop: threading.Event = field(default_factory=threading.Event)


def build_desk(settings: Settings, base_dir: Path, clock: Clock | None = None,
               environ: dict[str, str] | None = None, *, require_secrets: bool = True,
               stop: threading.Event | None = None) -> Desk:
    """Build the desk; with ``require_secrets`` a missing password variable is refused now, not at first use."""
    clock = clock or SystemClock()
    if require_secrets:
        for box in settings.mailboxes:
            if box.server.auth == "password":
                secret_from_env(box.server.password_env, f"mailbox {box.name}", environ)
    engine = make_engine(settings.database_url)
    migrate.upgrade(engine)
    sessions = make_session_factory(engine)
    with transaction(sessions) as session:
        for name in INSTALLATION_SECRETS:
            queries.get_or_create_secret(session, name)
    policy = RulesPolicy.load(_resolve(base_dir, settings.rules_dir), clock)
    runner = IngestRunner(settings=settings, sessions=sessions, clock=clock, policy=policy,
                          templates=template_environment(settings, base_dir))
    smtp_password = secret_from_env(settings.smtp.password_env, "smtp", environ) if require_secrets else None
    daemon_id = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
    sender = OutboxSender(sessions=sessions, clock=clock, transport=SmtpTransport(settings.smtp, smtp_password),
                          give_up_after=settings.give_up_after, give_up_acks_after=settings.give_up_acks_after,
                          daemon_id=daemon_id, alert=runner.alert_admins,
                          on_dead_letter=runner.tell_group_of_dead_letter)
    pollers = [
        MailboxPoller(settings=box, credential=imap_credential(box.server, f"mailbox {box.name}", environ),
                      sessions=sessions, clock=clock, runner=runner)
        for box in settings.mailboxes
    ]
    sweeper = Sweeper(sessions=sessions, clock=clock, policy=policy, notifier=runner.notifier,
                      lifecycle_policy=lifecycle_from(settings))
    return Desk(settings, sessions, clock, policy, runner, sender, pollers, sweeper, daemon_id=daemon_id,
                stop=stop or threading.Event())


def _resolve(base_dir: Path, folder: str) -> Path:
    path = Path(folder)
    return path if path.is_absolute() else base_dir / path


class Daemon:
    def __init__(self, desk: Desk) -> None:
        self.desk = desk
        self.scheduler = BackgroundScheduler(timezone=UTC)
        self._idle_threads: list[threading.Thread] = []
        self._running = 0
        self._running_changed = threading.Condition()

    def run(self, lock: SingleDaemonLock | None = None) -> int:
        """Run until SIGTERM/SIGINT; returns the exit code.

        ``lock`` is the single-daemon lock when the caller took it already (the
        command line takes it first thing, so a second daemon is refused at once).
        """
        if lock is None:
            lock = SingleDaemonLock(self.desk.settings.database_url)
            lock.acquire()
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        metrics = None
        try:
            self.start()
            if self.desk.settings.metrics_listen:
                host, port = self.desk.settings.metrics_listen
                metrics = serve_metrics(host, port, self.desk.sessions, self.desk.clock)
                log.info("metrics at http://%s:%d/metrics", host, port)
            log.info("maildesk running: %d mailbox(es), support address %s",
                     len(self.desk.pollers), self.desk.settings.support_address)
            self.desk.stop.wait()
            log.info("stopping: finishing the mail in hand")
        finally:
            if metrics is not None:
                metrics.shutdown()
            self.shutdown()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            lock.release()
        log.info("maildesk stopped")
        return 0

    def _on_signal(self, signum: int, _frame: Any) -> None:
        log.info("received %s", signal.Signals(signum).name)
        self.desk.stop.set()

    def start(self) -> None:
        self._register()
        now = datetime.now(UTC)
        for poller in self.desk.pollers:
            job_id = f"poll:{poller.settings.name}"
            self.scheduler.add_job(self._job(self._poll_job), "interval", args=[poller], id=job_id, next_run_time=now,
                                   seconds=poller.settings.poll_interval.total_seconds(),
                                   max_instances=1, coalesce=True, misfire_grace_time=None)
            if poller.settings.idle:
                self._start_idle_watcher(poller.settings, poller, job_id)
        self.scheduler.add_job(self._job(self._send_job), "interval", id="outbox", next_run_time=now,
                               seconds=self.desk.settings.outbox_interval.total_seconds(),
                               max_instances=1, coalesce=True, misfire_grace_time=None)
        self.scheduler.add_job(self._job(self._rules_job), "interval", id="rules", seconds=RULES_CHECK_SECONDS,
                               max_instances=1, coalesce=True)
        self.scheduler.add_job(self._job(self._sweep_job), "interval", id="sweep", next_run_time=now,
                               seconds=SWEEP_SECONDS, max_instances=1, coalesce=True, misfire_grace_time=None)
        self.scheduler.add_job(self._job(self._digest_job), "interval", id="digest", minutes=5,
                               max_instances=1, coalesce=True)
        self.scheduler.add_job(self._job(self._reports_job), "interval", id="reports", minutes=15,
                               max_instances=1, coalesce=True)
        self.scheduler.add_job(self._job(self._heartbeat_job), "interval", id="heartbeat",
                               seconds=HEARTBEAT_SECONDS, max_instances=1, coalesce=True)
        self.scheduler.start()

    def shutdown(self, timeout: float = 60.0) -> None:
        """Let running jobs finish their mail in hand, then stop the scheduler.

        APScheduler's own ``shutdown(wait=True)`` holds its job store lock while it
        waits, so a job that touches the scheduler would deadlock it; we wait for
        our jobs ourselves first.
        """
        self.desk.stop.set()
        for thread in self._idle_threads:
            thread.join(timeout=IDLE_WAIT_SECONDS + 5)
        with self._running_changed:
            self._running_changed.wait_for(lambda: self._running == 0, timeout=timeout)
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        for poller in self.desk.pollers:
            poller.disconnect()
        try:
            with transaction(self.desk.sessions) as session:
                queries.forget_daemon(session, self.desk.daemon_id)
        except Exception:  # noqa: BLE001 - the database may be gone; our claims then expire on their own
            log.warning("could not hand back claimed mail at shutdown", exc_info=True)

    def _register(self) -> None:
        """Announce this daemon; on SQLite (one daemon) anything a dead predecessor claimed is free again."""
        with transaction(self.desk.sessions) as session:
            if is_sqlite(self.desk.sessions.kw["bind"]):
                released = queries.release_all_claims(session)
                if released:
                    log.info("took back %d mail(s) a previous run had claimed but not sent", released)
            queries.heartbeat(session, self.desk.daemon_id, socket.gethostname(), os.getpid(), self.desk.clock.now())

    def _heartbeat_job(self) -> None:
        try:
            with transaction(self.desk.sessions) as session:
                queries.heartbeat(session, self.desk.daemon_id, socket.gethostname(), os.getpid(),
                                  self.desk.clock.now())
        except Exception as exc:  # noqa: BLE001 - a missed beat is retried in a few seconds
            log.warning("heartbeat failed: %s", exc)

    def wake(self, job_id: str) -> None:
        """Run a job now instead of at its next interval."""
        if self.desk.stop.is_set():
            return
        try:
            self.scheduler.modify_job(job_id, next_run_time=datetime.now(UTC))
        except Exception:  # noqa: BLE001 - the job may be gone while shutting down
            log.debug("could not wake %s", job_id, exc_info=True)

    def _job(self, func: Callable[..., None]) -> Callable[..., None]:
        """A job that counts itself as running, so shutdown can wait for it."""

        def run(*args: object) -> None:
            with self._running_changed:
                if self.desk.stop.is_set():
                    return
                self._running += 1
            try:
                func(*args)
            finally:
                with self._running_changed:
                    self._running -= 1
                    self._running_changed.notify_all()

        return run

    def _poll_job(self, poller: MailboxPoller) -> None:
        stop = self.desk.stop
        try:
            report = poller.poll_once(stop)
            outcomes = self.desk.runner.process_pending(stop, limit=PROCESS_PER_RUN)
        except MaildeskError as exc:
            log.error("polling %s failed: %s", poller.settings.name, exc)
            return
        if any(o.status == "new-ticket" for o in outcomes):
            self.wake("outbox")
        if outcomes:
            self.wake("sweep")  # new and changed tickets get their reminders planned at once
        if len(outcomes) >= PROCESS_PER_RUN or report.fetched >= poller.settings.batch_size:
            # A backlog: go on at once rather than wait for the next poll (the other jobs run in between).
            self.wake(f"poll:{poller.settings.name}")

    def _send_job(self) -> None:
        try:
            self.desk.sender.send_due(self.desk.stop)
        except MaildeskError as exc:
            log.error("sending failed: %s", exc)

    def _sweep_job(self) -> None:
        try:
            report = self.desk.sweeper.sweep(self.desk.stop)
        except MaildeskError as exc:
            log.error("SLA sweep failed: %s", exc)
            return
        if report.mails:
            self.wake("outbox")

    def _digest_job(self) -> None:
        try:
            if self.desk.sweeper.digest(at_local=self.desk.settings.digest_at):
                self.wake("outbox")
        except MaildeskError as exc:
            log.error("on-call digest failed: %s", exc)

    def _reports_job(self) -> None:
        desk = self.desk
        try:
            if send_scheduled_reports(sessions=desk.sessions, clock=desk.clock, policy=desk.policy,
                                      notifier=desk.runner.notifier, templates=desk.runner.templates,
                                      timezone=desk.settings.timezone, locale=desk.settings.locale,
                                      at_local=desk.settings.digest_at):
                self.wake("outbox")
        except MaildeskError as exc:
            log.error("scheduled report failed: %s", exc)

    def _rules_job(self) -> None:
        self.desk.policy.refresh()

    def _start_idle_watcher(self, settings: MailboxSettings, poller: MailboxPoller, job_id: str) -> None:
        thread = threading.Thread(target=self._idle_loop, args=(settings, poller, job_id),
                                  name=f"idle-{settings.name}", daemon=True)
        self._idle_threads.append(thread)
        thread.start()

    def _idle_loop(self, settings: MailboxSettings, poller: MailboxPoller, job_id: str) -> None:
        """A second connection that sits in IDLE and wakes the poll job on news."""
        stop = self.desk.stop
        failures = 0
        while not stop.is_set():
            try:
                with ImapSource(settings, poller.credential) as source:
                    if not source.supports_idle():
                        log.info("%s: server offers no IDLE; polling every %ss", settings.name,
                                 int(settings.poll_interval.total_seconds()))
                        return
                    failures = 0
                    while not stop.is_set():
                        if source.wait_for_news(IDLE_WAIT_SECONDS):
                            self.wake(job_id)
            except FetchError as exc:
                failures += 1
                delay = min(2 ** failures, 60)
                log.warning("%s: IDLE connection lost (%s); retrying in %ss", settings.name, exc, delay)
                stop.wait(delay)
