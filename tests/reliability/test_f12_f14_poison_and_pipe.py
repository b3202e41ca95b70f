"""F12 (poison mails at the head of the queue) and F14 (the MTA pipe, ``maildesk ingest -``: exit 0 when stored
or quarantined, 75 when the MTA must retry — database down, disk full — never 1 for a transient fault)."""

from __future__ import annotations

import resource
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from maildesk.cli import load_settings
from maildesk.clock import FrozenClock
from maildesk.daemon import build_desk
from maildesk.ingest import route as ingest_route
from maildesk.ingest.parse import parse_mail
from maildesk.store.models import RawMail, Ticket
from tests.reliability.corpus import NEW, build_corpus
from tests.reliability.harness import FULL, PASSWORD_ENV, ROOT, write_desk
from tests.reliability.reconcile import reconcile

F12_GOOD = 497 if FULL else 47
EX_TEMPFAIL = 75


@pytest.mark.reliability
def test_poison_mails_at_the_head_are_quarantined_after_3_attempts_while_good_mail_flows_and_can_be_requeued(
        tmp_path: Path, imap_account, smtp_sink_factory, monkeypatch, record_line) -> None:  # noqa: ANN001
    corpus = build_corpus(12, F12_GOOD + 3)
    parents = {m.parent for m in corpus.mails if m.parent}
    poison = [m.message_id for m in corpus.mails if m.outcome == NEW and m.message_id not in parents][:3]
    marks = [f"Message-ID: <{mid}>".encode() for mid in poison]

    def crashing_parse(raw: bytes, **kwargs):  # noqa: ANN003, ANN202
        if any(mark in raw for mark in marks):
            raise RuntimeError("injected parser crash (poison mail)")
        return parse_mail(raw, **kwargs)

    clock = FrozenClock(datetime(2026, 11, 23, 2, 0, tzinfo=UTC))
    sink = smtp_sink_factory(log_path=tmp_path / "sink.jsonl")
    config = write_desk(tmp_path, imap=(imap_account.host, imap_account.port, imap_account.user,
                                        imap_account.password), smtp=(sink.host, sink.port), idle=False)
    monkeypatch.setenv(PASSWORD_ENV, imap_account.password)
    desk = build_desk(*load_settings(str(config.path)), clock=clock)
    monkeypatch.setattr(ingest_route, "parse_mail", crashing_parse)
    imap_account.append_many(corpus.raws)
    assert desk.pollers[0].poll_once().error is None
    for wait in (timedelta(0), timedelta(seconds=30), timedelta(minutes=5)):
        clock.advance(wait)
        desk.runner.process_pending()
        if wait == timedelta(0):
            with desk.sessions() as session:
                behind = session.scalar(select(func.count(RawMail.id)).where(RawMail.status == "pending"))
            assert behind == 3, "every good mail is done in the same pass as the poison ahead of it"
    with desk.sessions() as session:
        held = list(session.scalars(select(RawMail).where(RawMail.status == "quarantined")))
    assert sorted(r.message_id for r in held) == sorted(poison)
    assert all(r.attempts == 3 and "Traceback" in (r.reason or "") and "injected" in (r.reason or "") for r in held)

    requeue = subprocess.run([sys.executable, "-m", "maildesk", "quarantine", "retry", "--all", "-c",
                              str(config.path)], env=config.env, cwd=ROOT, capture_output=True, timeout=60)
    assert requeue.returncode == 0 and b"requeued 3" in requeue.stdout, requeue.stderr.decode()
    monkeypatch.setattr(ingest_route, "parse_mail", parse_mail)  # the fix is deployed
    desk.runner.process_pending()
    desk.sender.send_due()
    result = reconcile("F12", corpus, desk.sessions, sink.log_path, not_innocent=frozenset(poison))
    record_line(result)
    result.check()


def _ingest(config: Path, env: dict[str, str], raw: bytes, *, fsize: int | None = None) -> subprocess.CompletedProcess:
    def limit() -> None:  # in the child: a full disk, as EFBIG instead of a SIGXFSZ death
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))

    return subprocess.run([sys.executable, "-m", "maildesk", "ingest", "-c", str(config), "-"], input=raw, env=env,
                          cwd=ROOT, capture_output=True, timeout=60, preexec_fn=limit if fsize is not None else None)


def _raw_count(config) -> int:  # noqa: ANN001
    with config.sessions()() as session:
        return int(session.scalar(select(func.count(RawMail.id))) or 0)


@pytest.mark.reliability
def test_the_mta_pipe_answers_75_for_a_full_disk_and_0_for_bad_and_good_input(tmp_path: Path) -> None:
    config = write_desk(tmp_path, imap=("127.0.0.1", 1, "x", "unused"), smtp=("127.0.0.1", 1))
    mails = build_corpus(14, 3).mails
    upgrade = subprocess.run([sys.executable, "-m", "maildesk", "db", "upgrade", "-c", str(config.path)],
                             env=config.env, cwd=ROOT, capture_output=True, timeout=60)
    assert upgrade.returncode == 0, upgrade.stderr.decode()

    full = _ingest(config.path, config.env, mails[0].raw, fsize=4096)
    assert full.returncode == EX_TEMPFAIL, (full.returncode, full.stderr.decode()[-2000:])
    assert _raw_count(config) == 0, "a refused mail leaves nothing behind"

    bad = _ingest(config.path, config.env, b"\x00\xff\xfe not a mail at all \x00\r\n\x1b[31m")
    assert bad.returncode == 0, bad.stderr.decode()[-2000:]
    good = _ingest(config.path, config.env, mails[0].raw)
    assert good.returncode == 0, good.stderr.decode()[-2000:]
    with config.sessions()() as session:
        statuses = dict(session.execute(select(RawMail.sha256, RawMail.status)).all())
        tickets = session.scalar(select(func.count(Ticket.id)))
    assert len(statuses) == 2 and set(statuses.values()) <= {"done", "quarantined", "discarded", "pending"}
    assert statuses[mails[0].sha256] == "done" and tickets >= 1


@pytest.mark.reliability
@pytest.mark.postgres
def test_the_mta_pipe_answers_75_while_postgresql_is_unreachable(tmp_path: Path, pg_url: str, tcp_proxy) -> None:  # noqa: ANN001
    url = make_url(pg_url)
    proxy = tcp_proxy(url.host or "127.0.0.1", url.port or 5432)
    proxied = url.set(host=proxy.host, port=proxy.port).render_as_string(hide_password=False)
    config = write_desk(tmp_path, imap=("127.0.0.1", 1, "x", "unused"), smtp=("127.0.0.1", 1), database_url=proxied)
    raw = build_corpus(141, 1).mails[0].raw
    proxy.reset_peer()
    down = _ingest(config.path, config.env, raw)
    assert down.returncode == EX_TEMPFAIL, down.stderr.decode()[-2000:]
    proxy.clear()
    assert _ingest(config.path, config.env, raw).returncode == 0
    assert _raw_count(config) == 1
