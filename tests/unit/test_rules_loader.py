"""Loading the three files and hot reload: changes picked up, broken edits refused, last good kept."""

from __future__ import annotations

import logging
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from maildesk.domain import Address, ParsedMail, Priority
from maildesk.errors import ConfigError
from maildesk.rules.loader import RuleWatcher, load_config_dir

SHIPPED = Path(__file__).resolve().parents[2] / "config"
AT = datetime(2026, 3, 10, 2, 0, tzinfo=UTC)
PRINTER_MAIL = ParsedMail(message_id="p@x", from_addr=Address("a@example.com"), subject="打印机卡纸", body_text="")
NEW_RULE = '''
[[rule]]
id = "printer-to-desk-side"
[rule.when]
subject_any = ["打印机"]
[rule.then]
group = "desk-side"
'''
NEW_GROUP = '\n[groups.desk-side]\nname = "桌面支持组"\n'


class FakeClock:
    def __init__(self) -> None:
        self.at = AT

    def now(self) -> datetime:
        return self.at


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    for name in ("rules.toml", "sla.toml", "groups.toml"):
        shutil.copy(SHIPPED / name, tmp_path / name)
    return tmp_path


def prepend_rule(config_dir: Path, rule: str) -> None:
    path = config_dir / "rules.toml"
    text = path.read_text(encoding="utf-8")
    head, sep, tail = text.partition("[[rule]]")
    path.write_text(head + rule.strip() + "\n\n" + sep + tail, encoding="utf-8")


def test_the_shipped_config_loads_with_china_holidays() -> None:
    config = load_config_dir(SHIPPED)
    assert config.groups.get("hardware-support") is not None
    assert config.calendar().source.startswith("holidays ")
    assert config.deadlines(Priority.URGENT, AT).first_response_at is not None


def test_problems_of_all_files_are_reported_together(config_dir: Path) -> None:
    (config_dir / "rules.toml").write_text('[defaults]\ncategory = "nope"\npriority = "low"\n', encoding="utf-8")
    (config_dir / "groups.toml").write_text("[groups.x]\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config_dir(config_dir)
    assert caught.value.problems[0].startswith(f"{config_dir}/rules.toml:2:")
    assert caught.value.problems[1].startswith(f"{config_dir}/groups.toml:1:")


def test_references_between_files_are_checked(config_dir: Path) -> None:
    prepend_rule(config_dir, NEW_RULE)
    with pytest.raises(ConfigError) as caught:
        load_config_dir(config_dir)
    (problem,) = caught.value.problems
    assert "rule printer-to-desk-side: group 'desk-side' is not defined" in problem


def test_watcher_picks_up_a_change_and_says_what_changed(config_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    watcher = RuleWatcher(config_dir, clock)
    before = len(watcher.current.rules.rules)
    assert watcher.current.classify(PRINTER_MAIL, at=AT).group == "hardware-support"
    assert watcher.check() == []
    (config_dir / "groups.toml").write_text((config_dir / "groups.toml").read_text(encoding="utf-8") + NEW_GROUP, encoding="utf-8")
    prepend_rule(config_dir, NEW_RULE)
    clock.at = AT.replace(minute=5)
    with caplog.at_level(logging.INFO, logger="maildesk.rules.loader"):
        changes = watcher.check()
    assert changes[0] == f"rules.toml: {before + 1} rules (was {before}): added printer-to-desk-side"
    assert changes[1].startswith("groups.toml: 8 groups (was 7): added desk-side")
    assert "added printer-to-desk-side" in caplog.text
    assert watcher.current.classify(PRINTER_MAIL, at=AT).group == "desk-side"
    assert watcher.loaded_at == clock.at


def test_a_broken_edit_is_refused_and_the_last_good_config_stays(config_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    watcher = RuleWatcher(config_dir)
    good = watcher.current
    path = config_dir / "rules.toml"
    path.write_text(path.read_text(encoding="utf-8").replace('category = "hardware"\ngroup = "hardware-support"', 'category = "hardwear"\ngroup = "hardware-support"', 1), encoding="utf-8")
    with caplog.at_level(logging.ERROR, logger="maildesk.rules.loader"):
        problems = watcher.check()
    assert len(problems) == 1 and "unknown category 'hardwear'" in problems[0]
    assert problems[0].startswith(f"{path}:")
    assert "last good version stays in force" in caplog.text
    assert watcher.current is good and watcher.problems == problems
    assert watcher.check() == []  # reported once, not at every poll
    path.write_text((SHIPPED / "rules.toml").read_text(encoding="utf-8"), encoding="utf-8")
    assert watcher.check() == ["the files are valid again and the same as the version in force"]
    assert watcher.problems == []


def test_a_deleted_file_keeps_the_last_good_config(config_dir: Path) -> None:
    watcher = RuleWatcher(config_dir)
    good = watcher.current
    (config_dir / "sla.toml").unlink()
    problems = watcher.check()
    assert problems and "sla.toml:1: cannot read" in problems[0]
    assert watcher.current is good


def test_a_comment_only_edit_is_reported_as_no_effective_change(config_dir: Path) -> None:
    watcher = RuleWatcher(config_dir)
    path = config_dir / "sla.toml"
    path.write_text("# edited by an admin\n" + path.read_text(encoding="utf-8"), encoding="utf-8")
    assert watcher.check() == ["sla.toml: 1 policies, 1 calendars: no effective change (comments or layout only)"]


def test_the_first_load_must_succeed(config_dir: Path) -> None:
    (config_dir / "rules.toml").write_text("[[rule]\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="rules.toml:1: TOML syntax"):
        RuleWatcher(config_dir)
