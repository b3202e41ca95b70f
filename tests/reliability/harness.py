"""The fault tests' test desk: its config, the ``maildesk run`` subprocess, bounded waits and progress counts.

A :class:`DaemonProcess` runs ``python -m maildesk run`` in its own process group with its output in a log
file, and remembers the wall-clock time of every ``kill -9`` it delivers (the reconciler counts window
events from them).  Every wait here has a timeout; every process is killed by :meth:`DaemonProcess.kill`,
which the tests call in a ``finally``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import func, select

from devstack import deskconfig
from maildesk.store.models import Outbox, RawMail
from maildesk.store.session import SessionFactory, make_engine, make_session_factory

ROOT = Path(__file__).resolve().parents[2]
SUPPORT = "support@desk.test"
PASSWORD_ENV = "MAILDESK_TEST_IMAP_PASSWORD"
FULL = os.environ.get("MAILDESK_RELIABILITY_FULL", "") not in ("", "0")


@dataclass(frozen=True)
class DeskConfig:
    """Where one test desk lives and how it reaches its servers."""

    path: Path
    database_url: str
    env: dict[str, str]

    def sessions(self) -> SessionFactory:
        return make_session_factory(make_engine(self.database_url))


def write_desk(tmp: Path, *, imap: tuple[str, int, str, str], smtp: tuple[str, int], database_url: str | None = None,
               batch_size: int = 50, poll_interval: str = "1s", idle: bool = True, imap_timeout: str = "10s",
               smtp_timeout: str = "5s", outbox_interval: str = "1s") -> DeskConfig:
    """A complete config folder for one desk; ``imap`` is (host, port, user, password).

    The shipped rules, SLA and groups, but no agents and groups without members: these scenarios count the
    mail requesters get, so no notices to agents travel beside the acknowledgments.
    """
    host, port, user, password = imap
    url = database_url or f"sqlite:///{tmp / 'var' / 'maildesk.db'}"
    path = deskconfig.write_desk(tmp / "config", deskconfig.DeskToml(
        database_url=url, imap_host=host, imap_port=port, imap_user=user, smtp_host=smtp[0], smtp_port=smtp[1],
        password_env=PASSWORD_ENV, batch_size=batch_size, poll_interval=poll_interval, idle=idle,
        imap_timeout=imap_timeout, smtp_timeout=smtp_timeout, outbox_interval=outbox_interval),
        rule_files=("rules.toml", "sla.toml", "groups.toml"), members=False)
    env = {**os.environ, PASSWORD_ENV: password}
    for name in ("MAILDESK_CRASHPOINT", "MAILDESK_SIGTERMPOINT"):
        env.pop(name, None)
    return DeskConfig(path, url, env)


@dataclass
class DaemonProcess:
    """One ``maildesk run`` subprocess (through :mod:`tests.reliability.launch`); output goes to ``log_path``
    (appended across restarts)."""

    desk: DeskConfig
    log_path: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    kill_times: list[datetime] = field(default_factory=list)
    started_at: float = 0.0

    def start(self, **extra_env: str) -> DaemonProcess:
        env = {**self.desk.env, **self.extra_env, **extra_env}
        with self.log_path.open("ab") as log:
            log.write(f"\n=== start {datetime.now(UTC).isoformat()} {extra_env} ===\n".encode())
            self.proc = subprocess.Popen([sys.executable, "-m", "tests.reliability.launch", "run", "-c",
                                          str(self.desk.path)], env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        self.started_at = time.monotonic()
        return self

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill9(self) -> None:
        """SIGKILL the daemon now and remember when (a window event if a mail was between 250 and sent)."""
        if self.alive:
            assert self.proc is not None
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
            self.kill_times.append(datetime.now(UTC))  # dead now: nothing it wrote can come later

    def sigterm(self) -> None:
        if self.alive:
            assert self.proc is not None
            self.proc.send_signal(signal.SIGTERM)

    def wait_exit(self, timeout: float) -> int | None:
        """The exit code, or None if still running after ``timeout`` seconds."""
        if self.proc is None:
            return None
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def note_crash(self) -> None:
        """Record the moment an injected crash was seen (an upper bound of when it happened)."""
        self.kill_times.append(datetime.now(UTC))

    def kill(self) -> None:
        """Safety net for ``finally``: SIGKILL the whole group if anything is left."""
        if self.proc is not None and self.proc.poll() is None:
            with suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def output(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path.exists() else ""


def memory_kib(pid: int) -> dict[str, int]:
    """VmHWM (peak RSS) and VmRSS of a process in KiB, from /proc; empty when it is gone."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return {}
    found: dict[str, int] = {}
    for line in lines:
        name, _, value = line.partition(":")
        if name in ("VmHWM", "VmRSS"):
            found[name] = int(value.split()[0])
    return found


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.2, what: str = "") -> bool:
    """Poll ``predicate`` until true or ``timeout``; returns whether it became true."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


@dataclass(frozen=True)
class Progress:
    raw: int
    pending: int
    outbox_open: int
    outbox_sent: int

    def drained(self, mails: int) -> bool:
        return self.raw >= mails and self.pending == 0 and self.outbox_open == 0


def progress(sessions: SessionFactory) -> Progress:
    """How far the desk got; tolerant of a database another process is writing."""
    try:
        with sessions() as session:
            raw = int(session.scalar(select(func.count(RawMail.id))) or 0)
            pending = int(session.scalar(select(func.count(RawMail.id)).where(RawMail.status == "pending")) or 0)
            open_ = int(session.scalar(select(func.count(Outbox.id))
                                       .where(Outbox.status.in_(("queued", "sending")))) or 0)
            sent = int(session.scalar(select(func.count(Outbox.id)).where(Outbox.status == "sent")) or 0)
    except Exception:  # noqa: BLE001 - a locked or missing database just means "not yet"
        return Progress(0, 1, 1, 0)
    return Progress(raw, pending, open_, sent)


def wait_drained(sessions: SessionFactory, mails: int, timeout: float, settle: float = 1.0) -> bool:
    """Wait until every mail is stored and processed and the outbox is empty, then ``settle`` seconds more."""
    done = wait_until(lambda: progress(sessions).drained(mails), timeout)
    if done and settle:
        time.sleep(settle)  # a late duplicate would arrive now
    return done
