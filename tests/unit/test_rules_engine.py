"""The engine reads rules top to bottom, first match per field, and says why."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime, time

from maildesk.domain import Address, Attachment, Category, ParsedMail, Priority
from maildesk.rules.engine import evaluate, raise_priority
from maildesk.rules.schema import parse_groups, parse_rules
from maildesk.sla.calendar import BusinessCalendar

RULES = textwrap.dedent("""\
    [defaults]
    category = "other"
    priority = "medium"
    impact = "single"
    urgency = "normal"
    group = "desk"

    [priority_matrix]
    org = { critical = "urgent", normal = "high" }
    single = { critical = "high", normal = "medium" }

    [[rule]]
    id = "scope-all"
    [rule.when]
    text_any = ["所有人", "everyone"]
    [rule.then]
    impact = "org"

    [[rule]]
    id = "erp-down"
    [rule.when]
    text_any = [["ERP", "财务系统"], ["宕机", "down"]]
    [rule.then]
    urgency = "critical"
    group = "ops"

    [[rule]]
    id = "printer"
    [rule.when]
    subject_any = ["打印机", "printer"]
    [rule.unless]
    from_domain = ["vendor.example"]
    [rule.then]
    category = "hardware"
    group = "hardware"
    tags = ["printer"]

    [[rule]]
    id = "everything-software"
    [rule.when]
    always = true
    [rule.then]
    category = "software"
    tags = ["seen"]

    [[rule]]
    id = "force-network"
    [rule.when]
    to = ["net-*@example.com"]
    [rule.then]
    category = "network"
    override = true
    stop = true

    [[rule]]
    id = "never-reached-after-stop"
    [rule.when]
    always = true
    [rule.then]
    tags = ["late"]

    [[rule]]
    id = "misc"
    [rule.when]
    body_regex = "ERR-\\\\d{4}"
    has_attachment = true
    headers = { "X-Mailer" = "Outlook*" }
    attachment_type = ["*.log"]
    business_hours = false
    [rule.then]
    tags = ["misc"]
    raise_priority = 1
    """)
GROUPS = '[groups.net]\nname = "网络组"\nmembers = ["net1@example.com"]\n\n[vip]\nsenders = ["boss@example.com"]\n'
AT = datetime(2026, 3, 10, 2, 0, tzinfo=UTC)  # Tuesday 10:00 in Shanghai
CAL = BusinessCalendar.weekly_hours("office", "Asia/Shanghai", {d: [(time(9), time(18))] for d in range(5)})


def mail(subject: str, body: str = "", sender: str = "user@example.com", **extra: object) -> ParsedMail:
    return ParsedMail(message_id="m@x", from_addr=Address(sender), subject=subject, body_text=body, **extra)  # type: ignore[arg-type]


def classify(m: ParsedMail, rules: str = RULES, **kwargs: object):  # type: ignore[no-untyped-def]
    return evaluate(parse_rules(rules, "config/rules.toml"), m, at=kwargs.pop("at", AT), calendar=CAL,  # type: ignore[arg-type]
                    groups=parse_groups(GROUPS, "config/groups.toml"), **kwargs)  # type: ignore[arg-type]


def test_first_match_wins_per_field_and_every_hit_is_recorded_with_why() -> None:
    result = classify(mail("打印机卡纸了"))
    assert result.category is Category.HARDWARE and result.group == "hardware"
    assert result.tags == ("printer", "seen", "late")
    assert [h.rule_id for h in result.hits] == ["printer", "everything-software", "never-reached-after-stop"]
    assert result.hits[0].location == "config/rules.toml:27" and result.hits[0].why == "subject contains '打印机'"


def test_keywords_ignore_case_and_width() -> None:
    assert classify(mail("ＰＲＩＮＴＥＲ jammed")).category is Category.HARDWARE
    assert classify(mail("Printers are out")).category is Category.HARDWARE


def test_ascii_keywords_must_start_a_word() -> None:
    result = classify(mail("We interpret the down payment"))  # neither 'erp' nor a system
    assert "erp-down" not in [h.rule_id for h in result.hits]


def test_unless_skips_the_rule() -> None:
    assert classify(mail("printer offer", sender="sales@vendor.example")).category is Category.SOFTWARE


def test_lists_of_lists_need_one_keyword_of_each() -> None:
    assert "erp-down" not in [h.rule_id for h in classify(mail("ERP 报表问题")).hits]
    result = classify(mail("ERP 宕机了", "所有人都登不上"))
    assert result.priority is Priority.URGENT and result.group == "ops"
    matrix_hit = next(h for h in result.hits if h.rule_id == "priority-matrix")
    assert matrix_hit.why == "impact org (scope-all) × urgency critical (erp-down) → urgent"


def test_matrix_fills_the_missing_axis_from_defaults() -> None:
    assert classify(mail("ERP down for me")).priority is Priority.HIGH  # single × critical


def test_override_replaces_and_stop_ends_evaluation() -> None:
    result = classify(mail("printer", to=(Address("net-ops@example.com"),)))
    assert result.category is Category.NETWORK and result.group == "hardware"
    assert "never-reached-after-stop" not in [h.rule_id for h in result.hits]
    assert classify(mail("x", headers=(("delivered-to", "<net-a@example.com>"),))).category is Category.NETWORK
    assert classify(mail("x"), mailbox="net-b@example.com").category is Category.NETWORK


def test_regex_attachment_header_and_business_hour_conditions() -> None:
    night = datetime(2026, 3, 10, 14, 0, tzinfo=UTC)  # 22:00 in Shanghai
    log = Attachment("trace.LOG", "text/plain", 10)
    m = mail("x", "failed with ERR-1234 today", attachments=(log,), headers=(("x-mailer", "Outlook 16"),))
    result = classify(m, at=night)
    hit = next(h for h in result.hits if h.rule_id == "misc")
    assert "body matches /ERR-\\d{4}/ ('ERR-1234')" in hit.why and "outside business hours" in hit.why
    assert "attachment 'trace.log' matches '*.log'" in hit.why
    assert result.priority is Priority.HIGH  # raise_priority = 1 from medium
    assert "misc" not in [h.rule_id for h in classify(m).hits]  # inside business hours


def test_vip_sender_is_raised_one_level_after_rules_and_recorded() -> None:
    result = classify(mail("printer", sender="Boss@Example.com"))
    assert result.priority is Priority.HIGH
    assert result.hits[-1].rule_id == "vip" and result.hits[-1].location == "config/groups.toml:6"


def test_nothing_matching_gives_the_defaults_with_a_reason() -> None:
    rules = RULES.split("[[rule]]")[0]
    result = classify(mail("hello"), rules=rules)
    assert (result.category, result.priority, result.group) == (Category.OTHER, Priority.MEDIUM, "desk")
    assert [h.rule_id for h in result.hits] == ["defaults"]


def test_sender_in_group_condition() -> None:
    rules = RULES.split("[[rule]]")[0] + '[[rule]]\nid = "agents"\n[rule.when]\nsender_in_group = ["net"]\n[rule.then]\nsuppress_ack = true\n'
    assert classify(mail("x", sender="NET1@example.com"), rules=rules).suppress_ack
    assert not classify(mail("x"), rules=rules).suppress_ack


def test_priority_never_goes_above_urgent() -> None:
    assert raise_priority(Priority.HIGH, 3) is Priority.URGENT
    assert raise_priority(Priority.LOW, 1) is Priority.MEDIUM


def test_hostile_body_cannot_hang_a_regex_rule() -> None:
    rules = RULES.split("[[rule]]")[0] + '[[rule]]\nid = "r"\n[rule.when]\nbody_regex = "\\\\s+$"\n[rule.then]\nstop = true\n'
    body = (" " * 5000 + "x\n") * 200  # a megabyte of trailing-space bait
    started = datetime.now(UTC)  # the test measures itself; the engine has no clock
    classify(mail("x", body), rules=rules)
    assert (datetime.now(UTC) - started).total_seconds() < 5
