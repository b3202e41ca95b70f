"""F4 UIDVALIDITY change at scale, F10 database unavailable, F13 rule file broken while running.

In-process against real Dovecot, the aiosmtpd sink, SQLite and PostgreSQL (behind the TCP fault proxy): the
daemon's own ``build_desk`` parts, driven cycle by cycle (F4, F13) or by the real ``Daemon`` scheduler (F10).
Scale: short by default, ``MAILDESK_RELIABILITY_FULL=1`` for the RELIABILITY.md figures.  F5 drives a second IMAP client from inside the first fetch.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.engine import make_url

from maildesk.cli import load_settings
from maildesk.daemon import Daemon, build_desk
from maildesk.store.models import Event, Message, RawMail, Ticket
from tests.integration.desk_helpers import count, request_mail, write_config
from tests.reliability.harness import FULL, wait_until

pytestmark = pytest.mark.reliability


def _desk(tmp_path: Path, account, sink, monkeypatch, **kw):  # noqa: ANN001, ANN202
    monkeypatch.setenv("MAILDESK_TEST_IMAP_PASSWORD", account.password)
    config = write_config(tmp_path, imap_host=account.host, imap_port=account.port, imap_user=account.user,
                          smtp_host=sink.host, smtp_port=sink.port, **kw)
    settings, base = load_settings(str(config))
    return build_desk(settings, base), config


def _cycle(desk) -> list[str | None]:  # noqa: ANN001
    errors = [poller.poll_once().error for poller in desk.pollers]
    desk.runner.process_pending()
    return errors


# --------------------------------------------------------------------------------------------------- F4
def test_f4_uidvalidity_change_after_part_of_a_backlog_doubles_nothing(tmp_path, imap_account, smtp_sink,
                                                                       monkeypatch) -> None:  # noqa: ANN001
    total, first, new = (500, 200, 20) if FULL else (100, 40, 20)
    desk, _ = _desk(tmp_path, imap_account, smtp_sink, monkeypatch, done_action="flag", batch_size=100)
    mails = [request_mail(f"f4-{i}@corp.test", f"问题 {i}", "VPN 无法连接")[0] for i in range(total)]
    imap_account.append_many(mails[:first])  # the first part arrives and is handled before the migration
    assert _cycle(desk) == [None]
    assert count(desk.sessions, Ticket) == first

    imap_account.recreate_folder("INBOX")  # a server migration: every mail again, new UIDVALIDITY
    fresh = [request_mail(f"f4-new-{i}@corp.test", f"新问题 {i}", "打印机卡纸")[0] for i in range(new)]
    imap_account.append_many(mails + fresh)
    for _ in range(3):
        assert _cycle(desk) == [None]
        if count(desk.sessions, RawMail, RawMail.status == "pending") == 0:
            break

    tickets, messages = count(desk.sessions, Ticket), count(desk.sessions, Message)
    duplicates = count(desk.sessions, RawMail, RawMail.status == "duplicate")
    events = count(desk.sessions, Event, Event.kind == "uidvalidity_changed")
    print(f"scenario=F4 mails_in={total + new} first={first} tickets={tickets} messages={messages} "
          f"duplicate_rows={duplicates} uidvalidity_events={events}")
    assert tickets == total + new and messages == total + new
    assert duplicates == first  # the re-listed copies of what was handled before the migration
    assert events == 1


# --------------------------------------------------------------------------------------------------- F5
def test_f5_mailbox_changed_behind_our_back_during_fetches_loses_and_doubles_nothing(
        tmp_path, imap_account, smtp_sink, monkeypatch) -> None:  # noqa: ANN001
    total = 500 if FULL else 100
    desk, _ = _desk(tmp_path, imap_account, smtp_sink, monkeypatch, batch_size=10)
    sent = [request_mail(f"f5-{i}@corp.test", f"请求 {i}", "内容") for i in range(total)]
    uids = imap_account.append_many([raw for raw, _ in sent])
    mid_of = {uid: mid for uid, (_, mid) in zip(uids, sent, strict=True)}
    later = uids[total // 2:]  # not fetched yet when the other client strikes
    moved, expunged = later[: total // 10], later[total // 10: total // 10 + total // 20]
    imap_account.create_folder("Elsewhere")
    original, struck = desk.runner.store_fetched, threading.Event()

    def store_fetched(mailbox, uidvalidity, mails):  # noqa: ANN001, ANN202 - runs inside the first FETCH batch
        if not struck.is_set():
            struck.set()
            with imap_account.client() as other:
                other.store_flags("INBOX", uids, ["\\Seen"])
                other.move("INBOX", moved, "Elsewhere")
                other.expunge("INBOX", expunged)
        return original(mailbox, uidvalidity, mails)

    desk.runner.store_fetched = store_fetched
    for _ in range(3):
        assert _cycle(desk) == [None]
    gone = {mid_of[u] for u in moved + expunged}
    with desk.sessions() as session:
        stored = list(session.scalars(select(RawMail.message_id)))
    tickets, messages = count(desk.sessions, Ticket), count(desk.sessions, Message)
    from maildesk.ingest.reconcile import reconcile_mailbox

    report = reconcile_mailbox(desk.pollers[0].settings, desk.pollers[0].credential, desk.sessions)
    print(f"scenario=F5 mails_in={total} raw={len(stored)} tickets={tickets} messages={messages} "
          f"gone_before_fetch={len(gone)} (moved {len(moved)}, expunged {len(expunged)}) "
          f"reconcile_missing={len(report.missing)} waiting={len(report.waiting)}")
    assert struck.is_set()
    assert len(stored) == len(set(stored)), "a mail was stored twice"
    assert set(stored) == set(mid_of.values()) - gone, "every mail still there is ingested, \\Seen or not"
    assert tickets == messages == total - len(gone)
    assert report.ok and report.waiting == []


# -------------------------------------------------------------------------------------------------- F10
def _run_f10(desk, imap_account, break_db, mend_db) -> None:  # noqa: ANN001
    daemon = Daemon(desk)
    daemon.start()
    try:
        imap_account.append_many([request_mail(f"f10-a{i}@corp.test", f"请求 {i}", "内容")[0] for i in range(5)])
        assert wait_until(lambda: count(desk.sessions, Ticket) == 5, 30)
        break_db()
        try:
            down = [request_mail(f"f10-b{i}@corp.test", f"停库时 {i}", "内容")[0] for i in range(10)]
            imap_account.append_many(down)
            time.sleep(4.0)  # several poll intervals (1 s) with the database away
            assert daemon.scheduler.running and not desk.stop.is_set()
            assert len(imap_account.list_uids("INBOX")) == 10, "nothing may be marked done while the DB is down"
        finally:
            mend_db()
        assert wait_until(lambda: imap_account.list_uids("INBOX") == [], 60)
        assert wait_until(lambda: count(desk.sessions, Ticket) == 15, 30)
        assert count(desk.sessions, Message) == 15
        print(f"scenario=F10 mails_in=15 tickets={count(desk.sessions, Ticket)} "
              f"messages={count(desk.sessions, Message)} lost=0 dup_tickets=0")
    finally:
        daemon.shutdown()


def test_f10_sqlite_held_exclusive_by_another_connection_loses_and_flags_nothing(tmp_path, imap_account, smtp_sink,
                                                                                  monkeypatch) -> None:  # noqa: ANN001
    desk, _ = _desk(tmp_path, imap_account, smtp_sink, monkeypatch)
    holder: dict[str, sqlite3.Connection] = {}

    def break_db() -> None:
        conn = sqlite3.connect(str(tmp_path / "var" / "maildesk.db"), timeout=30, isolation_level=None,
                               check_same_thread=False)
        conn.execute("BEGIN EXCLUSIVE")
        holder["conn"] = conn

    def mend_db() -> None:
        conn = holder.pop("conn")
        conn.execute("ROLLBACK")
        conn.close()

    _run_f10(desk, imap_account, break_db, mend_db)


@pytest.mark.postgres
def test_f10_postgres_connections_reset_for_a_while_loses_and_flags_nothing(tmp_path, imap_account, smtp_sink,
                                                                            pg_url, tcp_proxy, monkeypatch) -> None:  # noqa: ANN001
    url = make_url(pg_url)
    proxy = tcp_proxy(url.host or "127.0.0.1", url.port or 5432)
    proxied = url.set(host=proxy.host, port=proxy.port).render_as_string(hide_password=False)
    desk, _ = _desk(tmp_path, imap_account, smtp_sink, monkeypatch, database_url=proxied)
    _run_f10(desk, imap_account, proxy.reset_peer, proxy.clear)


# -------------------------------------------------------------------------------------------------- F13
def _groups(desk) -> list[str | None]:  # noqa: ANN001
    with desk.sessions() as session:
        return list(session.scalars(select(Ticket.group).order_by(Ticket.id)))


def _breakages(rules: Path, good: str) -> list[tuple[str, object]]:
    """(name, how to break rules.toml) — each one applied for exactly one reload cycle."""
    first_rule = good.index("[[rule]]")
    return [
        ("invalid-toml", good.replace('id = "non-core-device"', 'id = "non-core-device"\npriority = [oops', 1)),
        ("bad-regex", good[:first_rule] + '[[rule]]\nid = "runaway"\n[rule.when]\nsubject_regex = "(a+)+$"\n'
         '[rule.then]\ngroup = "hardware-support"\n\n' + good[first_rule:]),
        ("unknown-field", good.replace('id = "non-core-device"', 'id = "non-core-device"\ncolour = "red"', 1)),
        ("unreadable", None),
    ]


def test_f13_rule_file_broken_while_running_keeps_the_last_good_rules(tmp_path, imap_account, smtp_sink,
                                                                      monkeypatch) -> None:  # noqa: ANN001
    desk, config = _desk(tmp_path, imap_account, smtp_sink, monkeypatch)
    rules = config.parent / "rules.toml"
    good = rules.read_text(encoding="utf-8")
    imap_account.append(request_mail("f13-0@corp.test", "打印机无法打印", "三楼打印机卡纸")[0])
    assert _cycle(desk) == [None]
    expected = _groups(desk)[0]
    assert expected == "hardware-support"
    last_good = desk.policy.config

    for index, (name, broken) in enumerate(_breakages(rules, good), start=1):
        if broken is None:
            rules.unlink()
            rules.symlink_to(tmp_path / "does-not-exist.toml")  # root reads through chmod 000; a dangling link not
        else:
            rules.write_text(str(broken), encoding="utf-8")
        problems = desk.policy.refresh()
        assert problems and desk.policy.watcher.problems, name
        problem = desk.policy.watcher.problems[0]
        assert f"{rules}:" in problem, (name, problem)
        line = int(problem.split(f"{rules}:", 1)[1].split(":", 1)[0])
        assert line >= 1, (name, problem)
        assert desk.policy.config is last_good, f"{name}: a broken or half-loaded rule set is in force"
        imap_account.append(request_mail(f"f13-{index}@corp.test", "打印机又坏了", "打印出来全是空白")[0])
        assert _cycle(desk) == [None]
        assert _groups(desk)[-1] == expected, f"{name}: mail classified by something other than the last good set"
        print(f"F13 {name}: refused with {problem[:120]!r}")
        if rules.is_symlink():
            rules.unlink()
        rules.write_text(good, encoding="utf-8")
        desk.policy.refresh()
        assert not desk.policy.watcher.problems, name
        last_good = desk.policy.config  # the restored file is the good version now in force

    assert len(_groups(desk)) == 5 and set(_groups(desk)) == {expected}


def test_f13_restoring_an_unreadable_rule_file_clears_its_problem(tmp_path, imap_account, smtp_sink,
                                                                  monkeypatch) -> None:  # noqa: ANN001
    desk, config = _desk(tmp_path, imap_account, smtp_sink, monkeypatch)
    rules = config.parent / "rules.toml"
    good = rules.read_bytes()
    rules.unlink()
    assert desk.policy.refresh()
    rules.write_bytes(good)
    desk.policy.refresh()
    assert desk.policy.watcher.problems == []


def test_f13_a_reload_cut_at_the_swap_leaves_nothing_half_loaded(tmp_path, imap_account, smtp_sink,
                                                                 monkeypatch) -> None:  # noqa: ANN001
    """The swap is one assignment: a failure right before it (the ``rules_reloading`` point) keeps the old set."""
    desk, config = _desk(tmp_path, imap_account, smtp_sink, monkeypatch)
    rules = config.parent / "rules.toml"
    before = desk.policy.config
    rules.write_text(rules.read_text(encoding="utf-8").replace('group = "hardware-support"', 'group = "network"', 1),
                     encoding="utf-8")
    failed = threading.Event()

    def explode(point: str) -> None:
        if point == "rules_reloading":
            failed.set()
            raise RuntimeError("crash at rules_reloading")

    monkeypatch.setattr("maildesk.rules.loader.crashpoint", explode)
    with pytest.raises(RuntimeError):
        desk.policy.refresh()
    assert failed.is_set() and desk.policy.config is before
