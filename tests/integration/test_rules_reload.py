"""Issue 4 acceptance: a running daemon picks up an edited rule file without restart, and refuses a broken one."""

from __future__ import annotations

import time
from pathlib import Path

from sqlalchemy import select

from maildesk.cli import load_settings
from maildesk.daemon import Daemon, build_desk
from maildesk.store.models import Ticket

from .desk_helpers import acks, request_mail, write_config


def _wait(predicate, timeout: float = 20.0) -> bool:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def _groups(desk) -> list[str | None]:  # noqa: ANN001
    with desk.sessions() as session:
        return list(session.scalars(select(Ticket.group).order_by(Ticket.id)))


def test_edited_rules_apply_to_the_next_mail_and_a_broken_edit_is_refused(tmp_path: Path, imap_account, smtp_sink,
                                                                          monkeypatch, caplog) -> None:  # noqa: ANN001
    monkeypatch.setenv("MAILDESK_TEST_IMAP_PASSWORD", imap_account.password)
    config = write_config(tmp_path, imap_host=imap_account.host, imap_port=imap_account.port,
                          imap_user=imap_account.user, smtp_host=smtp_sink.host, smtp_port=smtp_sink.port)
    rules, groups = config.parent / "rules.toml", config.parent / "groups.toml"
    settings, base = load_settings(str(config))
    desk = build_desk(settings, base)
    daemon = Daemon(desk)
    daemon.start()
    try:
        imap_account.append(request_mail("a@corp.test", "打印机无法打印", "三楼打印机卡纸")[0])
        assert _wait(lambda: _groups(desk) == ["hardware-support"]), _groups(desk)

        groups.write_text(groups.read_text(encoding="utf-8")
                          + '\n[groups.print-desk]\nname = "打印服务组"\nmembers = ["print1@corp.test"]\n',
                          encoding="utf-8")
        text = rules.read_text(encoding="utf-8")
        start = text.index('id = "non-core-device"')
        end = text.index("[[rule]]", start)
        rules.write_text(text[:start] + text[start:end].replace('group = "hardware-support"',
                                                                 'group = "print-desk"') + text[end:],
                         encoding="utf-8")
        assert _wait(lambda: desk.policy.config.rules is not None
                     and any(g.group_id == "print-desk" for g in desk.policy.config.groups.groups))
        imap_account.append(request_mail("b@corp.test", "打印机又坏了", "打印出来全是空白")[0])
        assert _wait(lambda: _groups(desk) == ["hardware-support", "print-desk"]), _groups(desk)

        good = rules.read_text(encoding="utf-8")
        rules.write_text(good.replace('id = "non-core-device"', 'id = "non-core-device"\npriority = [oops', 1),
                         encoding="utf-8")
        assert _wait(lambda: bool(desk.policy.watcher.problems))
        problem = desk.policy.watcher.problems[0]
        assert str(rules) in problem and problem.split(str(rules), 1)[1].startswith(":")
        line = int(problem.split(str(rules) + ":", 1)[1].split(":", 1)[0])
        assert "oops" in rules.read_text(encoding="utf-8").splitlines()[line - 1]

        imap_account.append(request_mail("c@corp.test", "打印机第三次坏了", "还是卡纸")[0])
        assert _wait(lambda: _groups(desk) == ["hardware-support", "print-desk", "print-desk"]), _groups(desk)
        assert _wait(lambda: len(acks(smtp_sink)) == 3)
    finally:
        daemon.shutdown()
