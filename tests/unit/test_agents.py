"""The agent directory (agents.toml), its checks against groups.toml, and who gets a new ticket."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from maildesk.errors import ConfigError
from maildesk.rules.agents import (
    Agent,
    AgentDirectory,
    check_agents_against_calendars,
    check_agents_against_groups,
    choose_assignee,
    parse_agents,
)
from maildesk.rules.directory import GroupDirectory, parse_groups

CONFIG = Path(__file__).resolve().parents[2] / "config"

SMALL = """\
[agents.zhang-wei]
name = "张工"
addresses = ["Zhang@Example.com", "zw@example.com"]
groups = ["network"]
role = "lead"

[agents.li-na]
name = "李工"
addresses = ["li@example.com"]
groups = ["network"]
language = "en"
calendar = "shanghai-office"
on_duty = false

[agents.lin-jing]
name = "林经理"
addresses = ["boss@example.com"]
role = "supervisor"

[trust]
authserv_ids = ["MX.example.com"]
[trust.domains."example.com"]
methods = ["dkim", "token"]

[assignment]
mode = "least-open"
[assignment.groups]
network = "round-robin"
"""

GROUPS = """\
[groups.network]
name = "网络组"
lead = "zhang@example.com"
members = ["li@example.com"]
"""


def problems_of(text: str, groups: GroupDirectory | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_agents(text, "agents.toml", groups)
    return caught.value.problems


def agent(agent_id: str, on_duty: bool = True) -> Agent:
    return Agent(agent_id, agent_id.title(), (f"{agent_id}@example.com",), "agents.toml:1", on_duty=on_duty)


def test_the_shipped_agents_file_loads_and_matches_the_shipped_groups() -> None:
    groups = parse_groups((CONFIG / "groups.toml").read_text(encoding="utf-8"), "groups.toml")
    directory = parse_agents((CONFIG / "agents.toml").read_text(encoding="utf-8"), "agents.toml", groups)
    assert {g.group_id for g in groups.groups} <= {gid for a in directory.agents for gid in a.groups}
    assert len([a for a in directory.agents if a.role == "supervisor"]) == 2
    assert len(directory.supervisors_on_duty()) == 1
    assert check_agents_against_calendars(directory, {"shanghai-office"}) == []
    assert directory.trust.methods_for("example.com") == ("dkim", "spf", "token")


def test_an_agent_file_is_read_into_typed_agents_with_their_lines() -> None:
    directory = parse_agents(SMALL, "agents.toml")
    zhang = directory.by_address("ZHANG@example.com")
    assert zhang is not None and zhang.addresses == ("zhang@example.com", "zw@example.com")
    assert (zhang.role, zhang.language, zhang.on_duty, zhang.location) == ("lead", "zh-CN", True, "agents.toml:1")
    li = directory.by_name("li-na")
    assert li is not None and (li.language, li.calendar, li.on_duty) == ("en", "shanghai-office", False)
    assert directory.trust.authserv_ids == ("mx.example.com",)
    assert (directory.mode_for("network"), directory.mode_for("hardware-support"), directory.mode_for(None)) == (
        "round-robin", "least-open", "least-open")


@pytest.mark.parametrize("wanted", ["张工", "zhang-wei", "ZHANG-WEI", "zw@example.com", " 张工 ", "@张工", "Zhang@EXAMPLE.com"])
def test_an_agent_is_found_by_id_name_or_address(wanted: str) -> None:
    found = parse_agents(SMALL, "agents.toml").by_name(wanted)
    assert found is not None and found.agent_id == "zhang-wei"


def test_unknown_people_are_not_agents() -> None:
    directory = parse_agents(SMALL, "agents.toml")
    assert directory.by_name("王工") is None and directory.by_address("wang@example.com") is None
    assert directory.is_agent("Li@Example.com") and not directory.is_agent("mallory@evil.test")
    assert directory.addresses == frozenset({"zhang@example.com", "zw@example.com", "li@example.com", "boss@example.com"})


def test_members_leads_and_supervisors_are_looked_up() -> None:
    directory = parse_agents(SMALL, "agents.toml")
    groups = parse_groups(GROUPS, "groups.toml")
    assert [a.agent_id for a in directory.members_of("network")] == ["zhang-wei", "li-na"]
    lead = directory.lead_of("network", groups)
    assert lead is not None and lead.agent_id == "zhang-wei"
    assert [a.agent_id for a in directory.supervisors_on_duty()] == ["lin-jing"]


def test_a_group_without_a_lead_in_groups_toml_falls_back_to_a_member_with_the_lead_role() -> None:
    directory = parse_agents(SMALL, "agents.toml")
    groups = parse_groups('[groups.network]\nname = "网络组"\n', "groups.toml")
    lead = directory.lead_of("network", groups)
    assert lead is not None and lead.agent_id == "zhang-wei"


def test_schema_mistakes_are_all_reported_with_their_lines() -> None:
    text = (
        "[agents.Zhang_Wei]\n"          # 1 not kebab-case
        'name = "张工"\n'
        'addresses = ["zhang"]\n'        # 3 not an address
        'role = "boss"\n'                # 4 unknown role
        'language = "fr"\n'              # 5 unknown language
        "on_duty = \"yes\"\n"            # 6 not a bool
        "colour = 1\n"                   # 7 unknown field
        "[agents.li-na]\n"               # 8 no addresses
        'name = "李工"\n'
        "[assignment]\n"
        'mode = "random"\n'              # 11 unknown mode
        "[teams]\n"                      # 12 unknown top-level table
    )
    problems = problems_of(text)
    expected = [
        ("agents.toml:1:", "must be kebab-case"), ("agents.toml:3:", "not an address: 'zhang'"),
        ("agents.toml:4:", "role must be one of agent, lead, supervisor"), ("agents.toml:5:", "language must be one of zh-CN, en"),
        ("agents.toml:6:", "on_duty must be true or false"), ("agents.toml:7:", "unknown field 'colour'"),
        ("agents.toml:8:", "needs addresses"), ("agents.toml:11:", "assignment mode must be one of round-robin, least-open"),
        ("agents.toml:12:", "unknown top-level field 'teams'"),
    ]
    for prefix, words in expected:
        assert any(p.startswith(prefix) and words in p for p in problems), (prefix, words, problems)


def test_a_toml_syntax_error_names_its_line() -> None:
    assert problems_of('[agents.a]\nname = "x\n')[0].startswith("agents.toml:2: TOML syntax")


def test_an_address_or_a_name_used_by_two_agents_is_refused() -> None:
    text = ('[agents.a]\nname = "张工"\naddresses = ["x@example.com"]\n'
            '[agents.b]\nname = "张工"\naddresses = ["X@example.com"]\n')
    problems = problems_of(text)
    assert any(p.startswith("agents.toml:4:") and "address x@example.com is already used by agent a" in p for p in problems)
    assert any(p.startswith("agents.toml:4:") and "name '张工' is already used" in p for p in problems)


def test_supervisors_all_off_duty_are_refused() -> None:
    text = '[agents.boss]\nname = "林经理"\naddresses = ["boss@example.com"]\nrole = "supervisor"\non_duty = false\n'
    assert problems_of(text) == ["agents.toml:1: no supervisor is on duty; urgent and high tickets would notify nobody"]


def test_trust_mistakes_are_reported_with_their_lines() -> None:
    text = ('[trust]\nauthserv_ids = []\nserver = "mx"\n'
            '[trust.domains."example.com"]\nmethods = ["dkim", "dmarc"]\n'
            '[trust.domains."other.test"]\nmethods = ["spf"]\n')
    problems = problems_of(text)
    assert any(p.startswith("agents.toml:3:") and "unknown field 'server'" in p for p in problems)
    assert any(p.startswith("agents.toml:4:") and "'dmarc'" in p for p in problems)
    assert any(p.startswith("agents.toml:1:") and "authserv_ids names no receiving server" in p for p in problems)


def test_the_groups_cross_check_finds_unknown_groups_missing_agents_and_unlisted_memberships() -> None:
    groups = parse_groups(
        '[groups.network]\nname = "网络组"\nlead = "zw@example.com"\nmembers = ["li@example.com", "ghost@example.com"]\n'
        '[groups.desk]\nname = "服务台"\nmembers = ["boss@example.com"]\n', "groups.toml")
    text = SMALL.replace('groups = ["network"]\nlanguage', 'groups = ["network", "printers"]\nlanguage')
    problems = check_agents_against_groups(parse_agents(text, "agents.toml"), groups)
    assert any(p.startswith("agents.toml:7:") and "group 'printers' is not defined" in p for p in problems)
    assert any(p.startswith("groups.toml:1:") and "member ghost@example.com is not an agent" in p for p in problems)
    assert any(p.startswith("agents.toml:15:") and "is a member of desk in groups.toml" in p for p in problems)
    assert len(problems) == 3, problems


def test_a_group_lead_must_have_the_lead_or_supervisor_role() -> None:
    groups = parse_groups('[groups.network]\nname = "网络组"\nlead = "li@example.com"\n', "groups.toml")
    problems = problems_of(SMALL, groups)
    assert problems == ["agents.toml:7: agent li-na: leads network in groups.toml, so role must be lead or supervisor"]


def test_parse_agents_with_groups_runs_the_cross_check() -> None:
    assert parse_agents(SMALL, "agents.toml", parse_groups(GROUPS, "groups.toml")).path == "agents.toml"


def test_an_unknown_calendar_is_named() -> None:
    problems = check_agents_against_calendars(parse_agents(SMALL, "agents.toml"), {"beijing-office"})
    assert problems == ["agents.toml:7: agent li-na: calendar 'shanghai-office' is not defined in sla.toml (defines: beijing-office)"]


# --- choosing the assignee -------------------------------------------------------------

TEAM = [agent("a"), agent("b"), agent("c"), agent("d")]


def duty(*absent: str) -> Callable[[Agent], bool]:
    return lambda a: a.agent_id not in absent


@pytest.mark.parametrize(("last", "absent", "expected"), [
    (None, (), "a"),
    ("a", (), "b"),
    ("d", (), "a"),
    ("b", ("c",), "d"),
    ("c", ("d", "a"), "b"),
    ("gone-agent", (), "a"),
    ("b", ("a", "c", "d"), "b"),
])
def test_round_robin_takes_the_next_on_duty_agent_after_the_last(last: str | None, absent: tuple[str, ...], expected: str) -> None:
    chosen = choose_assignee(TEAM, mode="round-robin", open_counts={}, last_assigned=last, on_duty=duty(*absent))
    assert chosen is not None and chosen.agent_id == expected


@pytest.mark.parametrize(("counts", "last", "absent", "expected"), [
    ({"a": 3, "b": 1, "c": 2, "d": 5}, None, (), "b"),
    ({"a": 3, "b": 1, "c": 2, "d": 5}, None, ("b",), "c"),
    ({"a": 2, "b": 2, "c": 2, "d": 2}, "b", (), "c"),
    ({"a": 0, "b": 4}, "a", ("c",), "d"),
    ({"a": 1, "b": 1, "c": 0, "d": 0}, "c", ("d",), "c"),
])
def test_least_open_takes_the_on_duty_agent_with_fewest_tickets_ties_going_round(
    counts: dict[str, int], last: str | None, absent: tuple[str, ...], expected: str
) -> None:
    chosen = choose_assignee(TEAM, mode="least-open", open_counts=counts, last_assigned=last, on_duty=duty(*absent))
    assert chosen is not None and chosen.agent_id == expected


@pytest.mark.parametrize("mode", ["round-robin", "least-open"])
def test_nobody_on_duty_means_nobody_is_chosen(mode: str) -> None:
    assert choose_assignee(TEAM, mode=mode, open_counts={}, last_assigned=None, on_duty=duty("a", "b", "c", "d")) is None
    assert choose_assignee([], mode=mode, open_counts={}, last_assigned=None, on_duty=duty()) is None


def test_the_on_duty_flag_of_the_file_can_be_the_predicate() -> None:
    directory: AgentDirectory = parse_agents(SMALL, "agents.toml")
    team = directory.members_of("network")
    chosen = choose_assignee(team, mode="round-robin", open_counts={}, last_assigned="zhang-wei", on_duty=lambda a: a.on_duty)
    assert chosen is not None and chosen.agent_id == "zhang-wei"


def test_an_unknown_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="assignment mode"):
        choose_assignee(TEAM, mode="random", open_counts={}, last_assigned=None, on_duty=duty())
