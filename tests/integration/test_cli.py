"""The command line as an admin uses it: real processes, real files, a real database."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from maildesk.cli import load_settings
from maildesk.daemon import build_desk
from maildesk.ingest.imap import FetchedMail
from maildesk.store.models import RawMail

from .desk_helpers import request_mail, write_config


def _maildesk(*args: str, input_bytes: bytes | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MAILDESK_TEST_IMAP_PASSWORD": "unused"}
    return subprocess.run([sys.executable, "-m", "maildesk", *args], capture_output=True, env=env, timeout=60,
                          input=input_bytes.decode() if input_bytes else None, text=True)


def _config(tmp_path: Path) -> Path:
    return write_config(tmp_path, imap_host="127.0.0.1", imap_port=1, imap_user="x", smtp_host="127.0.0.1",
                        smtp_port=1)


def test_check_config_accepts_the_shipped_files(tmp_path: Path) -> None:
    result = _maildesk("check-config", "-c", str(_config(tmp_path)))
    assert result.returncode == 0, result.stderr
    assert "OK" in result.stdout


def test_check_config_lists_three_mistakes_with_their_lines(tmp_path: Path) -> None:
    config = _config(tmp_path)
    rules = config.parent / "rules.toml"
    lines = rules.read_text(encoding="utf-8").splitlines()
    index = {n: i for i, n in enumerate(lines)}
    first = next(i for i, line in enumerate(lines) if line.startswith("priority = "))
    lines[first] = 'priority = "super-urgent"'
    bad_regex = next(i for i, line in enumerate(lines) if line.startswith("[rule.when]"))
    lines.insert(bad_regex + 1, 'subject_regex = "(a+)+$"')
    lines.append("[[rule]]")
    lines.append('id = "Not Kebab"')
    lines.append("[rule.then]")
    lines.append('category = "hardware"')
    rules.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert index  # the file was read
    result = _maildesk("check-config", "-c", str(config))
    assert result.returncode == 1
    problems = [p for p in result.stderr.splitlines() if p.startswith(str(rules) + ":")]
    assert len(problems) >= 3, result.stderr
    text = rules.read_text(encoding="utf-8").splitlines()
    for problem in problems:
        line = int(problem.split(str(rules) + ":", 1)[1].split(":", 1)[0])
        assert 1 <= line <= len(text)
    reported = {int(p.split(str(rules) + ":", 1)[1].split(":", 1)[0]) for p in problems}
    assert first + 1 in reported
    assert bad_regex + 2 in reported
    assert any("Not Kebab" in text[n - 1] for n in reported)


def test_check_config_names_file_key_and_problem_of_the_settings(tmp_path: Path) -> None:
    config = _config(tmp_path)
    text = config.read_text(encoding="utf-8").replace('security = "none"', 'security = "ssl"', 1)
    config.write_text(text + '\n[smtp.extra]\n', encoding="utf-8")
    result = _maildesk("check-config", "-c", str(config))
    assert result.returncode == 1
    assert f"{config}:" in result.stderr and "mailbox.security" in result.stderr and "'ssl'" in result.stderr


def test_quarantine_list_show_and_retry(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("MAILDESK_TEST_IMAP_PASSWORD", "unused")
    config = _config(tmp_path)
    settings, base = load_settings(str(config))
    desk = build_desk(settings, base)
    raw, _ = request_mail("q@corp.test", "隔离测试", "内容")
    desk.runner.store_fetched("support", 1, [FetchedMail(1, raw)])
    with desk.sessions.begin() as session:
        row = session.query(RawMail).one()
        row.status, row.attempts, row.reason = "quarantined", 3, "processing failed 3 times:\nValueError: boom"
        raw_id = row.id
    listed = _maildesk("quarantine", "list", "-c", str(config))
    assert listed.returncode == 0 and "ValueError: boom" in listed.stdout and str(raw_id) in listed.stdout
    shown = _maildesk("quarantine", "show", str(raw_id), "-c", str(config))
    assert "quarantined" in shown.stdout and "ValueError: boom" in shown.stdout
    retried = _maildesk("quarantine", "retry", "--all", "-c", str(config))
    assert "requeued 1" in retried.stdout
    outcomes = desk.runner.process_pending()
    assert [o.status for o in outcomes] == ["new-ticket"]
    shown = _maildesk("tickets", "show", outcomes[0].ticket or "", "-c", str(config))
    assert shown.returncode == 0 and "隔离测试" in shown.stdout and "ticket_created" in shown.stdout


def test_parse_prints_json_for_a_broken_mail(tmp_path: Path) -> None:
    broken = tmp_path / "broken.eml"
    broken.write_bytes(b"Subject: =?gbk?b?tPLTobv6?=\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\n")
    result = _maildesk("parse", str(broken), "--json")
    assert result.returncode == 0, result.stderr
    assert '"subject": "打印机"' in result.stdout
