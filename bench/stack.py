"""The servers a benchmark run needs, started on loopback and always stopped: Dovecot, the SMTP sink
(in its own process), a throwaway PostgreSQL database; plus the desk config and the machine description.
"""

from __future__ import annotations

import json
import os
import platform
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from devstack.deskconfig import DeskToml, write_desk
from devstack.dovecot import Dovecot

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
PASSWORD_ENV = "MAILDESK_BENCH_IMAP_PASSWORD"


class SinkProcess:
    """``bench.sinkproc`` as a child process; its JSON-lines log is read back by the scenarios."""

    def __init__(self, folder: Path, *, keep_eml: bool = False) -> None:
        self.log_path = folder / "sink.jsonl"
        self.eml_dir = folder / "eml" if keep_eml else None
        self.host = "127.0.0.1"
        self.port = 0
        self._proc: subprocess.Popen[str] | None = None

    def start(self) -> SinkProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._proc = subprocess.Popen([sys.executable, "-m", "bench.sinkproc", str(self.log_path),
                                       *([str(self.eml_dir)] if self.eml_dir else [])], cwd=ROOT,
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline().strip()
        if not line.isdigit():
            self.stop()
            raise RuntimeError(f"the SMTP sink did not start (said {line!r})")
        self.port = int(line)
        return self

    def records(self) -> list[dict[str, object]]:
        if not self.log_path.exists():
            return []
        lines = self.log_path.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line.endswith("}")]

    def count(self) -> int:
        if not self.log_path.exists():
            return 0
        with self.log_path.open("rb") as fh:
            return sum(1 for _ in fh)

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            if proc.stdin:
                proc.stdin.close()
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@contextmanager
def mail_servers(folder: Path) -> Iterator[tuple[Dovecot, SinkProcess]]:
    """A Dovecot (users are added per scenario) and the sink; both stopped however the block ends."""
    dovecot = Dovecot(folder / "dovecot")
    sink = SinkProcess(folder / "sink")
    try:
        dovecot.start()
        sink.start()
        yield dovecot, sink
    finally:
        sink.stop()
        dovecot.stop()


def new_imap_user(dovecot: Dovecot, name: str) -> str:
    password = secrets.token_urlsafe(12)
    dovecot.add_user(name, password)
    return password


@contextmanager
def pg_database(base_url: str) -> Iterator[str | None]:
    """A fresh database ``maildesk_bench_<hex>`` on the server of ``base_url`` (None when unreachable)."""
    try:
        admin = create_engine(base_url, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3})
        with admin.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception:  # noqa: BLE001 - any failure means: no PostgreSQL here
        yield None
        return
    name = f"maildesk_bench_{secrets.token_hex(4)}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        yield make_url(base_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def write_desk_config(folder: Path, *, imap_port: int, imap_user: str, smtp_port: int, database_url: str,
                      idle: bool = True, poll_interval: str = "30s", batch_size: int = 200) -> Path:
    """A desk config as the example ``config/maildesk.toml`` ships it, pointed at the local servers.

    Differences from the example, all stated in the report: plain connections on loopback, and an ack
    limit of 1,000 per sender and hour, so that every new ticket is acknowledged (the costlier path).
    """
    return write_desk(folder / "config", DeskToml(
        database_url=database_url, imap_port=imap_port, imap_user=imap_user, smtp_port=smtp_port,
        password_env=PASSWORD_ENV, admins=(), poll_interval=poll_interval, idle=idle, batch_size=batch_size,
        imap_timeout="60s", smtp_timeout="60s", outbox_interval="5s",
        desk={"locale": "zh-CN", "ack_limit_per_hour": 1000},
        mailbox={"folder": "INBOX", "done_folder": "Processed"}), rule_files=("rules.toml", "sla.toml", "groups.toml"))


def machine() -> dict[str, object]:
    """What the figures were measured on."""
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    except OSError:
        mem_kb = 0
    return {
        "nproc": os.cpu_count(), "cpu": model, "memory_gb": round(mem_kb / 1024 / 1024, 1),
        "python": platform.python_version(), "kernel": platform.release(),
        "load_at_start": os.getloadavg()[0], "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "commit": _git("rev-parse", "--short", "HEAD"), "tree_dirty": bool(_git("status", "--porcelain", "maildesk")),
    }


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""
