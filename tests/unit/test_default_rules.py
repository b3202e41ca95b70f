"""The shipped config/ classifies a table of realistic mails to the expected category and priority."""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from maildesk.domain import Address, Category, ParsedMail, Priority
from maildesk.rules.loader import RuleConfig, load_config_dir

ROOT = Path(__file__).resolve().parents[2]
MAILS = tomllib.loads((ROOT / "tests" / "fixtures" / "classify" / "mails.toml").read_text(encoding="utf-8"))["mail"]
DEFAULT_AT = datetime(2026, 3, 10, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai"))


@pytest.fixture(scope="module")
def config() -> RuleConfig:
    return load_config_dir(ROOT / "config")


def test_the_table_has_at_least_forty_mails_in_both_languages() -> None:
    assert len(MAILS) >= 40
    assert len({m["name"] for m in MAILS}) == len(MAILS)
    chinese = [m for m in MAILS if any("\u4e00" <= ch <= "\u9fff" for ch in m["subject"] + m["body"])]
    assert 15 <= len(chinese) <= len(MAILS) - 15


@pytest.mark.parametrize("case", MAILS, ids=[m["name"] for m in MAILS])
def test_default_rules_classify(config: RuleConfig, case: dict[str, Any]) -> None:
    mail = ParsedMail(
        message_id=f"{case['name']}@fixtures", from_addr=Address(case["from"]), subject=case["subject"],
        body_text=case["body"], to=(Address("it-support@example.com"),),
    )
    result = config.classify(mail, at=DEFAULT_AT.astimezone(UTC), mailbox="it-support@example.com")
    why = "\n".join(f"  {h.rule_id} {h.location}: {h.why}" for h in result.hits)
    assert (result.category, result.priority) == (Category(case["category"]), Priority(case["priority"])), why
    assert result.close == case.get("close", False), why
    assert config.group_name(result.group)  # every decision lands in a known group
