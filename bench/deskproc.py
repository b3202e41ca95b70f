"""The maildesk daemon as the operator runs it (``python -m maildesk run -c CONFIG``), seen from outside.

Its memory is read from ``/proc/PID/status`` (``VmRSS`` now, ``VmHWM`` the peak); its progress from the
database it writes (a plain read-only connection, never maildesk's own session code).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import Engine, create_engine, text

from bench.stack import PASSWORD_ENV, ROOT


class DeskProcess:
    def __init__(self, config: Path, imap_password: str, log_path: Path) -> None:
        self.config = config
        self.log_path = log_path
        self.env = {**os.environ, PASSWORD_ENV: imap_password, "PYTHONUNBUFFERED": "1"}
        self.proc: subprocess.Popen[bytes] | None = None
        self.started = 0.0

    def start(self) -> DeskProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("wb")
        self.started = time.monotonic()
        self.proc = subprocess.Popen([sys.executable, "-m", "maildesk", "run", "-c", str(self.config)], cwd=ROOT,
                                     env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        return self

    def memory_mb(self, field: str = "VmHWM") -> float:
        """``VmHWM`` (peak resident set) or ``VmRSS`` of the daemon, in MB; 0 when it is gone."""
        if self.proc is None:
            return 0.0
        try:
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
        except OSError:
            pass
        return 0.0

    def check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"maildesk exited with {self.proc.returncode}; last lines of {self.log_path}:\n"
                               + self.log_tail())

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> int | None:
        """SIGTERM (the daemon finishes the mail in hand), then SIGKILL of its group after 30 s."""
        proc, self.proc = self.proc, None
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                return proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                return proc.wait(10)
        return proc.returncode


class Progress:
    """Counts of raw mails by status in the desk's database, read without maildesk's code."""

    def __init__(self, database_url: str) -> None:
        url = database_url
        if url.startswith("sqlite:///"):
            url = f"sqlite:///file:{url.removeprefix('sqlite:///')}?mode=ro&uri=true"
        self.engine: Engine = create_engine(url, pool_size=1) if not url.startswith("sqlite") \
            else create_engine(url)

    def raw_counts(self) -> dict[str, int]:
        try:
            with self.engine.connect() as conn:
                rows = conn.execute(text("SELECT status, count(*) FROM raw_mails GROUP BY status"))
                return {str(status): int(n) for status, n in rows}
        except Exception:  # noqa: BLE001 - the daemon may not have created the schema yet
            return {}

    def scalar(self, sql: str) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(text(sql)).scalar() or 0)

    def close(self) -> None:
        self.engine.dispose()
