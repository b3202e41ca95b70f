"""The config folder of a throwaway desk on the local mail stack, for the tests, the reliability harness and bench.

One writer, so the three suites differ only in the settings they say they change: every desk reads
plain IMAP and SMTP on loopback, one mailbox named ``support``, the shipped rule files and templates.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SUPPORT = "support@desk.test"
RULE_FILES = ("rules.toml", "sla.toml", "groups.toml", "agents.toml")


@dataclass(frozen=True)
class DeskToml:
    """What a test desk's ``maildesk.toml`` says; the defaults are the integration tests' desk."""

    database_url: str
    imap_port: int
    imap_user: str
    smtp_port: int
    imap_host: str = "127.0.0.1"
    smtp_host: str = "127.0.0.1"
    password_env: str = "MAILDESK_TEST_IMAP_PASSWORD"
    admins: tuple[str, ...] = ("admin@desk.test",)
    poll_interval: str = "1s"
    idle: bool = True
    batch_size: int = 200
    done_action: str = "move"
    imap_timeout: str = "10s"
    smtp_timeout: str = "10s"
    outbox_interval: str = "1s"
    desk: Mapping[str, object] = field(default_factory=dict)  # more [desk] keys, e.g. max_mail_size
    mailbox: Mapping[str, object] = field(default_factory=dict)  # more [[mailbox]] keys, e.g. done_folder


def write_desk(config: Path, toml: DeskToml, *, rule_files: Iterable[str] = RULE_FILES,
               members: bool = True) -> Path:
    """Write ``config``/maildesk.toml and copy the shipped rule files; returns the maildesk.toml path.

    ``members=False`` strips the groups' members and leads, so no notice to an agent travels beside the
    acknowledgments (the reliability scenarios count what requesters get).
    """
    config.mkdir(parents=True, exist_ok=True)
    for name in rule_files:
        source = ROOT / "config" / name
        if not source.exists():
            continue
        text = source.read_text(encoding="utf-8")
        if name == "groups.toml" and not members:
            text = "\n".join(line for line in text.splitlines() if not line.startswith(("members = ", "lead = ")))
        (config / name).write_text(text, encoding="utf-8")
    path = config / "maildesk.toml"
    path.write_text(desk_toml(toml, config), encoding="utf-8")
    return path


def desk_toml(toml: DeskToml, rules_dir: Path) -> str:
    desk = {"support_address": SUPPORT, "support_name": "技术支持中心", "admins": list(toml.admins),
            "timezone": "Asia/Shanghai", "rules_dir": str(rules_dir), "templates_dir": str(ROOT / "templates"),
            **toml.desk}
    mailbox = {"name": "support", "host": toml.imap_host, "port": toml.imap_port, "security": "none",
               "user": toml.imap_user, "password_env": toml.password_env, "done_action": toml.done_action,
               "poll_interval": toml.poll_interval, "idle": toml.idle, "batch_size": toml.batch_size,
               "timeout": toml.imap_timeout, **toml.mailbox}
    smtp = {"host": toml.smtp_host, "port": toml.smtp_port, "security": "none", "timeout": toml.smtp_timeout,
            "interval": toml.outbox_interval}
    return "\n".join([_table("[desk]", desk), _table("[database]", {"url": toml.database_url}),
                      _table("[[mailbox]]", mailbox), _table("[smtp]", smtp)])


def _table(header: str, values: Mapping[str, object]) -> str:
    # JSON scalars and arrays of strings are valid TOML values (true/false, numbers, "quoted \u escapes").
    return header + "\n" + "".join(f"{key} = {json.dumps(value, ensure_ascii=False)}\n"
                                   for key, value in values.items())
