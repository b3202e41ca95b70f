"""Rule, SLA and group files are validated into typed objects; every problem comes with file:line."""

from __future__ import annotations

import textwrap

import pytest

from maildesk.domain import Category, Priority
from maildesk.errors import ConfigError
from maildesk.rules.schema import parse_groups, parse_rules, parse_sla

HEAD = """\
[defaults]
category = "other"
priority = "medium"

[priority_matrix]
org = { critical = "urgent", normal = "high" }
single = { critical = "high", normal = "medium" }
"""  # 7 lines; the first rule below starts on line 8


def problems_of(text: str, parse=parse_rules, path: str = "config/rules.toml") -> list[str]:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError) as caught:
        parse(textwrap.dedent(text), path)
    return caught.value.problems


def rule(body: str) -> str:
    return HEAD + textwrap.dedent(body)


def test_a_valid_file_becomes_a_typed_rule_set() -> None:
    ruleset = parse_rules(rule("""\
        [[rule]]
        id = "printer-to-hardware"
        [rule.when]
        subject_any = ["打印机", "printer"]
        [rule.then]
        category = "hardware"
        priority = "medium"
        tags = ["printer"]
        """), "config/rules.toml")
    (only,) = ruleset.rules
    assert only.rule_id == "printer-to-hardware" and only.location == "config/rules.toml:8"
    assert only.then.category is Category.HARDWARE and only.then.priority is Priority.MEDIUM
    assert ruleset.matrix is not None and ruleset.matrix.lookup("org", "critical") is Priority.URGENT


def test_toml_syntax_error_reports_its_line() -> None:
    (problem,) = problems_of(HEAD + '[[rule]]\nid = "x"\nthis is not toml\n')
    assert problem.startswith("config/rules.toml:10: TOML syntax:")


def test_unknown_field_in_a_rule_is_named_with_its_line() -> None:
    (problem,) = problems_of(rule('[[rule]]\nid = "a"\npriorty = "high"\n[rule.when]\nalways = true\n[rule.then]\nstop = true\n'))
    assert problem.startswith("config/rules.toml:10:") and "unknown field 'priorty'" in problem


def test_unknown_condition_and_action_are_named_with_their_lines() -> None:
    problems = problems_of(rule("""\
        [[rule]]
        id = "a"
        [rule.when]
        subjct_any = ["x"]
        [rule.then]
        categry = "hardware"
        """))
    assert problems[0].startswith("config/rules.toml:11:") and "unknown condition 'subjct_any'" in problems[0]
    assert problems[1].startswith("config/rules.toml:13:") and "unknown action 'categry'" in problems[1]


def test_bad_values_are_refused_with_their_lines() -> None:
    problems = problems_of(rule("""\
        [[rule]]
        id = "a"
        [rule.when]
        has_attachment = "yes"
        [rule.then]
        category = "printers"
        priority = "critical"
        impact = "planet"
        raise_priority = 7
        group = "Hardware Support"
        language = "Chinese"
        """))
    lines = [p.split(": ", 1)[0] for p in problems]
    assert lines == [f"config/rules.toml:{n}" for n in (11, 13, 14, 15, 16, 17, 18)]
    assert "has_attachment must be true or false" in problems[0]
    assert "unknown category 'printers'" in problems[1]
    assert "unknown priority 'critical'" in problems[2]
    assert "unknown impact 'planet' (known: org, single)" in problems[3]


def test_rule_ids_must_be_kebab_case_and_unique() -> None:
    problems = problems_of(rule("""\
        [[rule]]
        id = "Printer_Rule"
        [rule.when]
        always = true
        [rule.then]
        stop = true

        [[rule]]
        id = "dup"
        [rule.when]
        always = true
        [rule.then]
        stop = true

        [[rule]]
        id = "dup"
        [rule.when]
        always = true
        [rule.then]
        stop = true
        """))
    assert problems[0].startswith("config/rules.toml:9:") and "kebab-case" in problems[0]
    assert problems[1].startswith("config/rules.toml:23:") and "duplicate rule id 'dup' (first at line 15)" in problems[1]


def test_a_rule_needs_conditions_and_actions() -> None:
    problems = problems_of(rule('[[rule]]\nid = "empty"\n'))
    assert [p.split(": ")[0] for p in problems] == ["config/rules.toml:8", "config/rules.toml:8"]
    assert "needs a [rule.when]" in problems[0] and "needs a non-empty [rule.then]" in problems[1]


def test_close_needs_a_reply_template() -> None:
    (problem,) = problems_of(rule('[[rule]]\nid = "a"\n[rule.when]\nalways = true\n[rule.then]\nclose = true\n'))
    assert problem.startswith("config/rules.toml:13:") and "reply_template" in problem


def test_urgency_needs_a_matrix_and_defaults_are_required() -> None:
    problems = problems_of('[[rule]]\nid = "a"\n[rule.when]\nalways = true\n[rule.then]\nurgency = "high"\n')
    assert problems[0] == "config/rules.toml:1: missing [defaults] table (category and priority for mail no rule classifies)"
    assert problems[1].startswith("config/rules.toml:6:") and "urgency needs a [priority_matrix]" in problems[1]


def test_an_incomplete_priority_matrix_is_refused() -> None:
    (problem,) = problems_of('[defaults]\ncategory = "other"\npriority = "low"\n[priority_matrix]\n'
                             'org = { high = "urgent", low = "high" }\nsingle = { high = "medium" }\n')
    assert problem.startswith("config/rules.toml:6:") and "same urgencies" in problem


def test_a_file_with_three_mistakes_reports_all_three_with_their_lines() -> None:
    problems = problems_of(rule("""\
        [[rule]]
        id = "printers"
        [rule.when]
        subject_any = ["打印机"]
        [rule.then]
        category = "hardwre"

        [[rule]]
        id = "vpn"
        [rule.when]
        subject_regex = "(a+)+$"
        [rule.then]
        category = "network"

        [[rule]]
        id = "printers"
        [rule.when]
        body_any = ["toner"]
        [rule.then]
        group = "hardware-support"
        """))
    assert len(problems) == 3
    assert problems[0].startswith("config/rules.toml:13: rule printers: unknown category 'hardwre'")
    assert problems[1].startswith("config/rules.toml:18: rule vpn: when: subject_regex /(a+)+$/ refused: nested quantifiers")
    assert problems[2].startswith("config/rules.toml:23: duplicate rule id 'printers' (first at line 8)")


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        ("(a+)+$", "nested quantifiers"),
        ("(.*a){20}", "nested quantifiers"),
        ("(x|x)*y", "repeated alternation"),
        ("(\\\\w+)\\\\s\\\\1", "backreferences"),
        ("(?P<w>a)(?P=w)", "backreferences"),
        ("error.*code.*failed", "multiply the work"),
        ("([a-z]+\\\\s?)*end", "nested quantifiers"),
        ("[unclosed", "invalid regular expression"),
    ],
)
def test_runaway_and_invalid_regexes_are_refused_at_load(pattern: str, reason: str) -> None:
    (problem,) = problems_of(rule(f'[[rule]]\nid = "r"\n[rule.when]\nbody_regex = "{pattern}"\n[rule.then]\nstop = true\n'))
    assert problem.startswith("config/rules.toml:11:") and reason in problem


@pytest.mark.parametrize("pattern", ["ERR-\\\\d{4}", "(\\\\d{1,3}\\\\.){3}\\\\d{1,3}", "\\\\bVPN\\\\b", "a.{0,15}b.{0,15}c", "(?:工单|ticket)\\\\s*#?\\\\d+"])
def test_ordinary_regexes_are_accepted(pattern: str) -> None:
    parse_rules(rule(f'[[rule]]\nid = "r"\n[rule.when]\nbody_regex = "{pattern}"\n[rule.then]\nstop = true\n'), "r.toml")


def test_keyword_lists_of_lists_only_for_any() -> None:
    (problem,) = problems_of(rule('[[rule]]\nid = "r"\n[rule.when]\ntext_all = [["a"], ["b"]]\n[rule.then]\nstop = true\n'))
    assert problem.startswith("config/rules.toml:11:") and "flat list" in problem


def test_reserved_ids_are_refused() -> None:
    (problem,) = problems_of(rule('[[rule]]\nid = "vip"\n[rule.when]\nalways = true\n[rule.then]\nstop = true\n'))
    assert "reserved" in problem


SLA = """\
[defaults]
policy = "standard"

[calendars.office]
timezone = "Asia/Shanghai"
hours = ["09:00-12:00", "13:00-18:00"]
holidays = "CN"
holiday_years = [2026]

[policies.standard]
calendar = "office"
[policies.standard.urgent]
clock = "24x7"
first_response = "15m"
resolution = "2h"
progress_every = "30m"
[policies.standard.high]
first_response = "30m"
resolution = "4h"
[policies.standard.medium]
first_response = "2h"
[policies.standard.low]
first_response = "1 working day"
resolution = "3 working days"
"""


def test_a_valid_sla_file_becomes_policies_and_calendar_specs() -> None:
    sla = parse_sla(SLA, "config/sla.toml")
    policy = sla.policy()
    assert policy.target(Priority.URGENT).clock == "24x7"
    assert policy.target(Priority.MEDIUM).resolution is None
    assert sla.calendars[0].weekly[0] == sla.calendars[0].weekly[4] and not sla.calendars[0].weekly[5]


def test_sla_problems_carry_their_lines() -> None:
    broken = (SLA.replace('first_response = "2h"', 'first_response = "two hours"')
              .replace('hours = ["09:00-12:00", "13:00-18:00"]', 'hours = ["09:00-12:00", "11:00-18:00"]')
              .replace('clock = "24x7"', 'clock = "always"')
              .replace('calendar = "office"', 'calendar = "offfice"'))
    problems = problems_of(broken, parse_sla, "config/sla.toml")
    assert [p.split(": ")[0] for p in problems] == [f"config/sla.toml:{n}" for n in (6, 11, 13, 21)]
    assert "clock must be one of business, 24x7, not 'always'" in problems[2]
    assert "first_response must be a duration" in problems[3] and "'two hours'" in problems[3]
    assert "unknown calendar 'offfice'" in problems[1]


def test_sla_missing_priority_and_unknown_field() -> None:
    text = SLA.replace("[policies.standard.low]", "[policies.standard.lowest]") + "\n[holidays]\nx = 1\n"
    problems = problems_of(text, parse_sla, "config/sla.toml")
    assert any(p.startswith("config/sla.toml:26: unknown top-level field 'holidays'") for p in problems)
    assert any(p.startswith("config/sla.toml:22:") and "unknown field 'lowest'" in p for p in problems)
    assert any("needs a [policies.standard.low] table" in p for p in problems)


GROUPS = """\
[groups.hardware-support]
name = "硬件支持组"
lead = "hw-lead@example.com"
members = ["hw1@example.com"]

[vip]
senders = ["ceo@example.com", "key-client.com", "*@board.example.com"]
"""


def test_groups_and_vips_are_parsed_with_kinds_and_locations() -> None:
    directory = parse_groups(GROUPS, "config/groups.toml")
    group = directory.get("hardware-support")
    assert group is not None and group.name == "硬件支持组" and group.location == "config/groups.toml:1"
    assert [v.kind for v in directory.vips] == ["address", "domain", "glob"]
    assert directory.vip_entry("Someone@Key-Client.com") is directory.vips[1]
    assert directory.vip_entry("chair@board.example.com") is directory.vips[2]
    assert directory.vip_entry("ceo@example.com.evil.net") is None
    assert directory.groups_of("HW1@example.com") == ("hardware-support",)


def test_group_problems_carry_their_lines() -> None:
    text = GROUPS.replace('lead = "hw-lead@example.com"', 'lead = "hw lead"').replace(
        "[vip]", '[groups.Network]\nname = "网络组"\nmanager = "x@example.com"\n\n[vip]')
    problems = problems_of(text, parse_groups, "config/groups.toml")
    assert problems[0].startswith("config/groups.toml:3:") and "lead must be an address" in problems[0]
    assert problems[1].startswith("config/groups.toml:6:") and "kebab-case" in problems[1]
    assert problems[2].startswith("config/groups.toml:8:") and "unknown field 'manager'" in problems[2]
