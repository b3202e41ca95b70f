"""Typed settings of ``maildesk.toml``, parsed from text and validated once.

No file reads and no environment here: the shell reads the file and resolves
the secrets whose *names* the settings carry (``password_env``), so a secret
never sits in a file of the repo.  Every problem is reported as
``file:line: key: reason`` and all of them are reported together.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from maildesk.errors import ConfigError

SECURITY_MODES = ("none", "starttls", "tls")
DONE_ACTIONS = ("move", "flag")
_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min|h|d)\s*$")
_DURATION_UNITS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}
_ENV_NAME_RE = re.compile(r"^[A-Z_][A-Z0-9_]*$")
_ADDRESS_RE = re.compile(r"^[^@\s<>\"',;]+@[^@\s<>\"',;]+\.[^@\s<>\"',;]+$|^[^@\s<>\"',;]+@localhost$")


def parse_duration(value: object) -> timedelta:
    """``"30s"``, ``"15m"``, ``"2h"``, ``"1d"`` or a number of seconds."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration like '30s' or '15m', got {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        match = _DURATION_RE.match(str(value))
        if match is None:
            raise ValueError(f"expected a duration like '30s', '15m', '2h' or '1d', got {value!r}")
        seconds = float(match.group(1)) * _DURATION_UNITS[match.group(2)]
    if seconds <= 0:
        raise ValueError(f"a duration must be positive, got {value!r}")
    return timedelta(seconds=seconds)


def line_of(text: str, table: str | None, key: str | None = None, index: int = 0) -> int:
    """Best-effort line (1-based) of ``key`` inside the ``index``-th ``[table]``/``[[table]]``."""
    lines = text.splitlines()
    start, seen = 0, -1
    if table is not None:
        header = re.compile(r"^\s*\[\[?\s*" + re.escape(table) + r"\s*\]\]?\s*(#.*)?$")
        for number, line in enumerate(lines):
            if header.match(line):
                seen += 1
                if seen == index:
                    start = number
                    break
        else:
            return 1
        if key is None:
            return start + 1
    if key is not None:
        pattern = re.compile(r"^\s*\"?" + re.escape(key) + r"\"?\s*=")
        for number in range(start, len(lines)):
            if number > start and table is not None and lines[number].lstrip().startswith("["):
                break
            if pattern.match(lines[number]):
                return number + 1
    return start + 1


@dataclass(frozen=True)
class ServerSettings:
    host: str
    port: int
    security: str
    user: str | None
    password_env: str | None
    timeout: timedelta
    ca_file: str | None = None
    auth: str = "password"  # password | xoauth2
    token_env: str | None = None
    token_command: tuple[str, ...] = ()


@dataclass(frozen=True)
class MailboxSettings:
    name: str
    server: ServerSettings
    folder: str
    done_action: str
    done_folder: str
    done_flag: str
    poll_interval: timedelta
    idle: bool
    batch_size: int
    queue: str | None


@dataclass(frozen=True)
class LifecycleSettings:
    """When reminders, reopening and auto-close happen (``[lifecycle]``)."""

    warn_share: float = 0.75
    pending_reminder_after: timedelta = timedelta(days=2)
    pending_reminder_max: int = 2
    auto_close_after: timedelta = timedelta(days=3)
    reopen_window: timedelta = timedelta(days=7)
    closed_policy: str = "new-ticket"  # new-ticket | note


@dataclass(frozen=True)
class Settings:
    support_address: str
    support_name: str
    timezone: str
    locale: str
    database_url: str
    rules_dir: str
    templates_dir: str | None
    mailboxes: tuple[MailboxSettings, ...]
    smtp: ServerSettings
    bounce_address: str
    message_id_domain: str
    outbox_interval: timedelta
    give_up_after: timedelta
    give_up_acks_after: timedelta
    own_addresses: frozenset[str] = field(default_factory=frozenset)
    ack_limit_per_hour: int = 5
    admins: tuple[str, ...] = ()
    metrics_listen: tuple[str, int] | None = None  # ("127.0.0.1", 9464)
    log_format: str = "text"  # text | json
    digest_at: str = "09:00"  # local time of the daily on-call digest
    max_mail_size: int = 25 * 1024 * 1024  # bytes; larger mails are not parsed (quarantined, sender told)
    oversize: str = "keep"  # keep: store the whole mail raw | headers: store its headers, leave it on the server
    lifecycle: LifecycleSettings = field(default_factory=lambda: LifecycleSettings())


class _Reader:
    """Pulls typed values out of parsed TOML and remembers every problem."""

    def __init__(self, text: str, path: str) -> None:
        self.text, self.path, self.problems = text, path, []  # type: ignore[var-annotated]

    def problem(self, table: str | None, key: str | None, reason: str, index: int = 0) -> None:
        where = f"{table}.{key}" if table and key else (table or key or "")
        line = line_of(self.text, table, key, index)
        self.problems.append(f"{self.path}:{line}: {where}: {reason}")

    def get(self, data: dict[str, Any], table: str | None, key: str, kind: type, default: Any = ...,
            index: int = 0) -> Any:
        if key not in data:
            if default is ...:
                self.problem(table, None, f"missing required key '{key}'", index)
                return None
            return default
        value = data[key]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            self.problem(table, key, f"expected {kind.__name__}, got {type(value).__name__}", index)
            return default if default is not ... else None
        return value

    def duration(self, data: dict[str, Any], table: str, key: str, default: str, index: int = 0) -> timedelta:
        try:
            return parse_duration(data.get(key, default))
        except ValueError as exc:
            self.problem(table, key, str(exc), index)
            return parse_duration(default)

    def unknown(self, data: dict[str, Any], table: str | None, allowed: set[str], index: int = 0) -> None:
        for key in sorted(set(data) - allowed):
            self.problem(table, key, f"unknown key '{key}' (allowed: {', '.join(sorted(allowed))})", index)


OVERSIZE_MODES = ("keep", "headers")
_SIZE_UNITS = {"": 1, "b": 1, "k": 1024, "kb": 1024, "m": 1024 ** 2, "mb": 1024 ** 2, "g": 1024 ** 3,
               "gb": 1024 ** 3}


def parse_size(value: object) -> int:
    """``26214400``, ``"25MB"``, ``"512 kB"`` → bytes (binary units, as mail clients show sizes)."""
    if isinstance(value, int) and not isinstance(value, bool):
        size = value
    elif isinstance(value, str) and (m := re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmMgG]?[bB]?)\s*", value)):
        size = int(float(m.group(1)) * _SIZE_UNITS[m.group(2).lower()])
    else:
        raise ValueError(f"expected a size like 25MB or a number of bytes, got {value!r}")
    if not 64 * 1024 <= size <= 2 * 1024 ** 3:
        raise ValueError(f"must be between 64kB and 2GB, got {value!r}")
    return size


def _size(r: _Reader, data: dict[str, Any], table: str, key: str, default: str) -> int:
    try:
        return parse_size(data.get(key, default))
    except ValueError as exc:
        r.problem(table, key, str(exc))
        return parse_size(default)


_SERVER_KEYS = {"host", "port", "security", "user", "password_env", "timeout", "ca_file", "auth", "token_env",
                "token_command"}
AUTH_MODES = ("password", "xoauth2")
_MAILBOX_KEYS = _SERVER_KEYS | {"name", "folder", "done_action", "done_folder", "done_flag",
                                "poll_interval", "idle", "batch_size", "queue"}


def _server(r: _Reader, data: dict[str, Any], table: str, default_port: dict[str, int],
            index: int = 0) -> ServerSettings:
    security = r.get(data, table, "security", str, "starttls", index)
    if security not in SECURITY_MODES:
        r.problem(table, "security", f"must be one of {', '.join(SECURITY_MODES)}, got {security!r}", index)
        security = "starttls"
    port = r.get(data, table, "port", int, default_port[security], index)
    if port is not None and not 0 < port < 65536:
        r.problem(table, "port", f"must be between 1 and 65535, got {port}", index)
    password_env = r.get(data, table, "password_env", str, None, index)
    if password_env is not None and not _ENV_NAME_RE.match(password_env):
        r.problem(table, "password_env", "must name an environment variable (A-Z, 0-9, _), "
                  "not hold the password itself", index)
    if "password" in data:
        r.problem(table, "password", "passwords are never written in files; "
                  "set password_env to the name of an environment variable", index)
    auth = r.get(data, table, "auth", str, "password", index)
    if auth not in AUTH_MODES:
        r.problem(table, "auth", f"must be 'password' or 'xoauth2', got {auth!r}", index)
    token_env = r.get(data, table, "token_env", str, None, index)
    token_command = r.get(data, table, "token_command", list, [], index)
    if auth == "xoauth2" and not token_env and not token_command:
        r.problem(table, "auth", "xoauth2 needs token_env (a variable holding the access token) or "
                  "token_command (a command printing it)", index)
    if token_command and not all(isinstance(part, str) for part in token_command):
        r.problem(table, "token_command", "must be a list of strings, e.g. [\"oauth2-token\", \"--mailbox\"]",
                  index)
    return ServerSettings(
        auth=auth or "password",
        token_env=token_env,
        token_command=tuple(str(part) for part in token_command),
        host=r.get(data, table, "host", str, ..., index) or "",
        port=port or default_port[security],
        security=security,
        user=r.get(data, table, "user", str, None, index),
        password_env=password_env,
        timeout=r.duration(data, table, "timeout", "60s", index),
        ca_file=r.get(data, table, "ca_file", str, None, index),
    )


def _mailbox(r: _Reader, data: dict[str, Any], index: int) -> MailboxSettings:
    table = "mailbox"
    r.unknown(data, table, _MAILBOX_KEYS | {"password"}, index)
    server = _server(r, data, table, {"none": 143, "starttls": 143, "tls": 993}, index)
    action = r.get(data, table, "done_action", str, "move", index)
    if action not in DONE_ACTIONS:
        r.problem(table, "done_action", f"must be 'move' or 'flag', got {action!r}", index)
    batch = r.get(data, table, "batch_size", int, 200, index)
    if batch is not None and not 1 <= batch <= 5000:
        r.problem(table, "batch_size", f"must be between 1 and 5000, got {batch}", index)
    return MailboxSettings(
        name=r.get(data, table, "name", str, f"mailbox-{index + 1}", index),
        server=server,
        folder=r.get(data, table, "folder", str, "INBOX", index),
        done_action=action,
        done_folder=r.get(data, table, "done_folder", str, "Processed", index),
        done_flag=r.get(data, table, "done_flag", str, "$MaildeskDone", index),
        poll_interval=r.duration(data, table, "poll_interval", "30s", index),
        idle=r.get(data, table, "idle", bool, True, index),
        batch_size=batch or 200,
        queue=r.get(data, table, "queue", str, None, index),
    )


def _check_address(r: _Reader, table: str, key: str, value: str | None) -> None:
    if value and not _ADDRESS_RE.match(value):
        r.problem(table, key, f"not an e-mail address: {value!r}")


def parse_settings(text: str, path: str = "maildesk.toml") -> Settings:
    """Parse and validate ``maildesk.toml``; raise ConfigError naming every problem."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}:{_toml_error_line(exc)}: invalid TOML: {exc}") from None
    r = _Reader(text, path)
    r.unknown(data, None, {"desk", "database", "mailbox", "smtp", "metrics", "logging", "lifecycle"})
    desk = _table(r, data, "desk")
    r.unknown(desk, "desk", {"support_address", "support_name", "timezone", "locale", "rules_dir",
                             "templates_dir", "bounce_address", "message_id_domain", "own_addresses",
                             "ack_limit_per_hour", "admins", "digest_at", "max_mail_size", "oversize"})
    support = r.get(desk, "desk", "support_address", str) or ""
    _check_address(r, "desk", "support_address", support)
    timezone = r.get(desk, "desk", "timezone", str, "Asia/Shanghai")
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        r.problem("desk", "timezone", f"unknown time zone {timezone!r}")
    locale = r.get(desk, "desk", "locale", str, "zh-CN")
    if locale not in ("zh-CN", "en"):
        r.problem("desk", "locale", f"must be 'zh-CN' or 'en', got {locale!r}")
    bounce = r.get(desk, "desk", "bounce_address", str, support)
    _check_address(r, "desk", "bounce_address", bounce)
    own = r.get(desk, "desk", "own_addresses", list, [])
    digest_at = r.get(desk, "desk", "digest_at", str, "09:00")
    if not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", digest_at or ""):
        r.problem("desk", "digest_at", f"expected a local time like 09:00, got {digest_at!r}")
    admins = r.get(desk, "desk", "admins", list, [])
    for admin in admins:
        _check_address(r, "desk", "admins", admin if isinstance(admin, str) else repr(admin))
    ack_limit = r.get(desk, "desk", "ack_limit_per_hour", int, 5)
    if ack_limit is not None and ack_limit < 0:
        r.problem("desk", "ack_limit_per_hour", f"must be 0 or more, got {ack_limit}")
    max_mail_size = _size(r, desk, "desk", "max_mail_size", "25MB")
    oversize = r.get(desk, "desk", "oversize", str, "keep")
    if oversize not in OVERSIZE_MODES:
        r.problem("desk", "oversize", f"must be one of {', '.join(OVERSIZE_MODES)}, got {oversize!r}")
    database = _table(r, data, "database")
    r.unknown(database, "database", {"url"})
    outbound = _table(r, data, "smtp")
    r.unknown(outbound, "smtp", _SERVER_KEYS | {"interval", "give_up_after", "give_up_acks_after", "password"})
    smtp = _server(r, outbound, "smtp", {"none": 25, "starttls": 587, "tls": 465})
    raw_boxes = data.get("mailbox", [])
    if not isinstance(raw_boxes, list) or not raw_boxes:
        r.problem(None, "mailbox", "at least one [[mailbox]] is required")
        raw_boxes = []
    mailboxes = tuple(_mailbox(r, box, i) for i, box in enumerate(raw_boxes) if isinstance(box, dict))
    names = [m.name for m in mailboxes]
    for dup in sorted({n for n in names if names.count(n) > 1}):
        r.problem("mailbox", "name", f"mailbox name {dup!r} is used twice", names.index(dup))
    metrics_listen = _metrics(r, _table(r, data, "metrics"))
    lifecycle = _lifecycle(r, _table(r, data, "lifecycle"))
    logging_table = _table(r, data, "logging")
    r.unknown(logging_table, "logging", {"format"})
    log_format = r.get(logging_table, "logging", "format", str, "text")
    if log_format not in ("text", "json"):
        r.problem("logging", "format", f"must be 'text' or 'json', got {log_format!r}")
    if r.problems:
        raise ConfigError(r.problems)
    return Settings(
        metrics_listen=metrics_listen,
        lifecycle=lifecycle,
        log_format=log_format,
        support_address=support,
        support_name=r.get(desk, "desk", "support_name", str, "技术支持"),
        timezone=timezone,
        locale=locale,
        database_url=r.get(database, "database", "url", str, "sqlite:///var/maildesk.db"),
        rules_dir=r.get(desk, "desk", "rules_dir", str, "config"),
        templates_dir=r.get(desk, "desk", "templates_dir", str, None),
        mailboxes=mailboxes,
        smtp=smtp,
        bounce_address=bounce or support,
        message_id_domain=r.get(desk, "desk", "message_id_domain", str, support.rpartition("@")[2]),
        outbox_interval=r.duration(outbound, "smtp", "interval", "5s"),
        give_up_after=r.duration(outbound, "smtp", "give_up_after", "5d"),
        give_up_acks_after=r.duration(outbound, "smtp", "give_up_acks_after", "1d"),
        own_addresses=frozenset(a.lower() for a in [support, bounce, *own] if isinstance(a, str) and a),
        ack_limit_per_hour=ack_limit if ack_limit is not None else 5,
        admins=tuple(a for a in admins if isinstance(a, str)),
        digest_at=digest_at or "09:00",
        max_mail_size=max_mail_size,
        oversize=oversize if oversize in OVERSIZE_MODES else "keep",
    )


def _lifecycle(r: _Reader, t: dict[str, Any]) -> LifecycleSettings:
    r.unknown(t, "lifecycle", {"warn_share", "pending_reminder_after", "pending_reminder_max", "auto_close_after",
                               "reopen_window", "closed_policy"})
    share = r.get(t, "lifecycle", "warn_share", float, 0.75)
    if share is not None and not 0 < share < 1:
        r.problem("lifecycle", "warn_share", f"must be between 0 and 1 (a share of the deadline), got {share}")
        share = 0.75
    most = r.get(t, "lifecycle", "pending_reminder_max", int, 2)
    if most is not None and not 0 <= most <= 10:
        r.problem("lifecycle", "pending_reminder_max", f"must be between 0 and 10, got {most}")
    closed = r.get(t, "lifecycle", "closed_policy", str, "new-ticket")
    if closed not in ("new-ticket", "note"):
        r.problem("lifecycle", "closed_policy", f"must be 'new-ticket' or 'note', got {closed!r}")
    return LifecycleSettings(
        warn_share=share or 0.75,
        pending_reminder_after=r.duration(t, "lifecycle", "pending_reminder_after", "2d"),
        pending_reminder_max=most if most is not None and 0 <= most <= 10 else 2,
        auto_close_after=r.duration(t, "lifecycle", "auto_close_after", "3d"),
        reopen_window=r.duration(t, "lifecycle", "reopen_window", "7d"),
        closed_policy=closed if closed in ("new-ticket", "note") else "new-ticket",
    )


def _metrics(r: _Reader, table: dict[str, Any]) -> tuple[str, int] | None:
    r.unknown(table, "metrics", {"listen"})
    listen = r.get(table, "metrics", "listen", str, None)
    if listen is None:
        return None
    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        r.problem("metrics", "listen", f"expected host:port such as 127.0.0.1:9464, got {listen!r}")
        return None
    return host.strip("[]"), int(port)


def _table(r: _Reader, data: dict[str, Any], name: str) -> dict[str, Any]:
    value = data.get(name, {})
    if not isinstance(value, dict):
        r.problem(None, name, f"[{name}] must be a table")
        return {}
    return value


def _toml_error_line(exc: tomllib.TOMLDecodeError) -> int:
    match = re.search(r"line (\d+)", str(exc))
    return int(match.group(1)) if match else 1
