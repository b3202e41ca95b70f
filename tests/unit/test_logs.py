"""Log lines for operators: JSON when asked, and never a secret."""

from __future__ import annotations

import json
import logging

from maildesk.logs import JsonFormatter, RedactSecrets


def _record(message: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord("maildesk.test", logging.WARNING, __file__, 1, message, args, None)


def test_json_lines_carry_time_level_logger_and_message() -> None:
    entry = json.loads(JsonFormatter().format(_record("ticket %s created for %s", "TS20261123001", "张三")))
    assert entry["level"] == "warning" and entry["logger"] == "maildesk.test"
    assert entry["message"] == "ticket TS20261123001 created for 张三"
    assert entry["at"].endswith("+00:00")


def test_a_secret_in_a_log_line_is_replaced() -> None:
    record = _record("login failed for %s with %s", "support", "s3cret-Passw0rd")
    assert RedactSecrets(["s3cret-Passw0rd"]).filter(record)
    assert record.getMessage() == "login failed for support with ***"


def test_lines_without_secrets_are_untouched() -> None:
    record = _record("polled %d mails", 3)
    RedactSecrets(["s3cret-Passw0rd"]).filter(record)
    assert record.getMessage() == "polled 3 mails"
