"""H13: secrets never leak — forced failures at IMAP login, SMTP AUTH and DB connect, with debug logging.

The real ``maildesk -v`` command runs in subprocesses: a mail is taken in through ``maildesk ingest`` (so an
acknowledgment waits in the outbox), then ``maildesk -v run`` meets a wrong IMAP password and a wrong SMTP
password (the sink requires AUTH), and ``maildesk -v run``/``status`` meet a PostgreSQL URL whose password is a
secret and whose port is closed.  Every captured output, ``maildesk status``, ``maildesk quarantine list``,
the metrics text, the mails the sink received and the bytes of the SQLite database are searched for every
secret value: 0 occurrences.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

from devstack.net import free_port
from maildesk.clock import SystemClock
from maildesk.health import collect, prometheus_text
from maildesk.store.session import make_engine, make_session_factory
from tests.integration.desk_helpers import request_mail, write_config

from .desk import ROOT

SMTP_USER = "desk"


def _maildesk(args: list[str], env: dict[str, str], timeout: float = 60) -> str:
    done = subprocess.run([sys.executable, "-m", "maildesk", "-v", *args], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)
    return f"$ maildesk {' '.join(args)} → {done.returncode}\n{done.stdout}{done.stderr}"


def _run_for(config: Path, env: dict[str, str], seconds: float, log: Path) -> str:
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "maildesk", "-v", "run", "-c", str(config)], env=env,
                                cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            time.sleep(seconds)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(10)
    return log.read_text(encoding="utf-8", errors="replace")


def _with_smtp_auth(config: Path) -> None:
    """Give the [smtp] table of a write_config file a user and a password variable."""
    text = config.read_text(encoding="utf-8")
    assert text.rstrip().endswith('\ninterval = "1s"')  # the last key of [smtp]
    config.write_text(text.rstrip() + f'\nuser = "{SMTP_USER}"\npassword_env = "MAILDESK_TEST_SMTP_PASSWORD"\n',
                      encoding="utf-8")


def test_no_secret_appears_in_logs_status_quarantine_metrics_or_mail(tmp_path, imap_account, smtp_sink_factory) -> None:  # noqa: ANN001
    imap_secret = "imapSECRET" + secrets.token_hex(8)
    smtp_secret = "smtpSECRET" + secrets.token_hex(8)
    db_secret = "dbSECRET" + secrets.token_hex(8)
    sink = smtp_sink_factory(auth=(SMTP_USER, "the-right-smtp-password"))
    config = write_config(tmp_path, imap_host=imap_account.host, imap_port=imap_account.port,
                          imap_user=imap_account.user, smtp_host=sink.host, smtp_port=sink.port)
    _with_smtp_auth(config)
    env = {**os.environ, "MAILDESK_TEST_IMAP_PASSWORD": imap_secret, "MAILDESK_TEST_SMTP_PASSWORD": smtp_secret}
    outputs: list[str] = []

    mail = tmp_path / "request.eml"
    mail.write_bytes(request_mail("zhang@corp.test", "打印机无法打印", "三楼")[0])
    outputs.append(_maildesk(["ingest", "-c", str(config), str(mail)], env))
    outputs.append(_run_for(config, env, 6.0, tmp_path / "run.log"))  # IMAP login and SMTP AUTH both refused
    outputs.append(_maildesk(["status", "-c", str(config)], env))
    outputs.append(_maildesk(["quarantine", "list", "-c", str(config)], env))
    outputs.append(_maildesk(["outbox", "list", "-c", str(config)], env))
    sessions = make_session_factory(make_engine(f"sqlite:///{tmp_path / 'var' / 'maildesk.db'}"))
    outputs.append(prometheus_text(collect(sessions, SystemClock())))
    outputs.extend(m.raw.decode("utf-8", "replace") for m in sink.received)
    database = b"".join(p.read_bytes() for p in (tmp_path / "var").glob("maildesk.db*"))

    assert "login refused" in outputs[1] or "AUTHENTICATE" in outputs[1] or "Authentication" in outputs[1], \
        outputs[1][-3000:]
    assert "SMTP login refused" in outputs[1] or "535" in outputs[1], outputs[1][-3000:]

    pg_config = tmp_path / "pg" / "config" / "maildesk.toml"
    pg_config.parent.mkdir(parents=True)
    for name in ("rules.toml", "sla.toml", "groups.toml", "agents.toml"):
        (pg_config.parent / name).write_bytes((config.parent / name).read_bytes())
    closed = free_port()
    pg_config.write_text(config.read_text(encoding="utf-8").replace(
        f"sqlite:///{tmp_path / 'var' / 'maildesk.db'}",
        f"postgresql+psycopg://maildesk:{db_secret}@127.0.0.1:{closed}/maildesk"), encoding="utf-8")
    pg_env = {**env, "MAILDESK_TEST_IMAP_PASSWORD": imap_account.password}
    outputs.append(_maildesk(["run", "-c", str(pg_config)], pg_env))
    outputs.append(_maildesk(["status", "-c", str(pg_config)], pg_env))
    outputs.append(_maildesk(["ingest", "-c", str(pg_config), str(mail)], pg_env))
    assert "127.0.0.1" in outputs[-3] or "connect" in outputs[-3].lower(), outputs[-3][-2000:]

    text = "\n".join(outputs)
    print(text[-4000:])
    for secret in (imap_secret, smtp_secret, db_secret):
        assert text.count(secret) == 0, f"{secret[:8]}… found in output:\n" + \
            "\n".join(line for line in text.splitlines() if secret in line)[:2000]
        assert database.count(secret.encode()) == 0, f"{secret[:8]}… stored in the database"
