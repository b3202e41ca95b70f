"""The agent directory, built from the text of ``agents.toml``, and who gets a new ticket.

An agent has a kebab-case id (``zhang-wei``), a display name (``张工``), the
addresses they write from, the groups they work in, a role (agent, lead,
supervisor), a language, the business calendar of their working hours and
whether they are on duty.  The file also holds the ``[trust]`` policy that says
how an agent's mail is authenticated (see ``ingest.authn``) and the
``[assignment]`` mode, global or per group.  ``choose_assignee`` is the pure
round-robin / least-open choice the runner calls with the counts it queried.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from maildesk.errors import ConfigError
from maildesk.ingest.authn import METHODS, DomainTrust, TrustPolicy
from maildesk.rules.directory import GroupDirectory
from maildesk.rules.tomlsource import SourceMap, expect_type, load_toml, string_list, unknown_keys

ROLES = ("agent", "lead", "supervisor")
LANGUAGES = ("zh-CN", "en")
MODES = ("round-robin", "least-open")
_KEBAB = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_ADDRESS = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_TOP_KEYS = frozenset({"agents", "trust", "assignment"})
_AGENT_KEYS = frozenset({"name", "addresses", "groups", "role", "language", "calendar", "on_duty"})
_CHOICE_KEYS = {"role": ROLES, "language": LANGUAGES}


@dataclass(frozen=True)
class Agent:
    agent_id: str
    name: str
    addresses: tuple[str, ...]
    location: str
    groups: tuple[str, ...] = ()
    role: str = "agent"
    language: str = "zh-CN"
    calendar: str | None = None
    on_duty: bool = True


@dataclass(frozen=True)
class AgentDirectory:
    agents: tuple[Agent, ...] = ()
    trust: TrustPolicy = field(default_factory=TrustPolicy)
    assignment_mode: str = "round-robin"
    group_modes: tuple[tuple[str, str], ...] = ()  # (group id, mode)
    path: str = ""
    assignment_location: str = ""  # "agents.toml:40", where per-group modes are written

    @property
    def addresses(self) -> frozenset[str]:
        """Every agent address, lower-cased (for ``ingest.authn.verify_agent``)."""
        return frozenset(a for agent in self.agents for a in agent.addresses)

    def is_agent(self, address: str) -> bool:
        return address.strip().lower() in self.addresses

    def by_address(self, address: str) -> Agent | None:
        wanted = address.strip().lower()
        return next((a for a in self.agents if wanted in a.addresses), None)

    def by_name(self, name_or_id: str) -> Agent | None:
        """The agent whose id, name or address is ``name_or_id`` (``#assign 张工``), ignoring case and width."""
        wanted = _fold(name_or_id).removeprefix("@")
        return next((a for a in self.agents if wanted in {a.agent_id, _fold(a.name), *a.addresses}), None)

    def members_of(self, group_id: str) -> tuple[Agent, ...]:
        """Agents that list ``group_id`` in their groups, in file order."""
        return tuple(a for a in self.agents if group_id in a.groups)

    def lead_of(self, group_id: str, groups: GroupDirectory) -> Agent | None:
        """The group's lead per groups.toml, else the first member with the role lead."""
        group = groups.get(group_id)
        found = self.by_address(group.lead) if group and group.lead else None
        return found or next((a for a in self.members_of(group_id) if a.role == "lead"), None)

    def supervisors_on_duty(self) -> tuple[Agent, ...]:
        return tuple(a for a in self.agents if a.role == "supervisor" and a.on_duty)

    def mode_for(self, group_id: str | None) -> str:
        """The assignment mode of a group, else the global one."""
        return dict(self.group_modes).get(group_id or "", self.assignment_mode)


def _fold(text: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def choose_assignee(
    candidates: Sequence[Agent],
    *,
    mode: str,
    open_counts: Mapping[str, int],
    last_assigned: str | None,
    on_duty: Callable[[Agent], bool],
) -> Agent | None:
    """Who gets the next ticket: the next on-duty candidate after ``last_assigned`` (round robin),
    or the on-duty candidate with the fewest open tickets, ties going round robin.

    ``open_counts`` and ``last_assigned`` are keyed by agent id.  None when nobody is on duty.
    """
    if mode not in MODES:
        raise ValueError(f"assignment mode must be one of {', '.join(MODES)}, not {mode!r}")
    ids = [a.agent_id for a in candidates]
    start = ids.index(last_assigned) + 1 if last_assigned in ids else 0
    rotation = [candidates[(start + i) % len(candidates)] for i in range(len(candidates))]
    present = [a for a in rotation if on_duty(a)]
    if not present:
        return None
    if mode == "round-robin":
        return present[0]
    return min(present, key=lambda a: open_counts.get(a.agent_id, 0))  # min keeps the first of equals


# --- parsing ---------------------------------------------------------------------------


def parse_agents(text: str, path: str, groups: GroupDirectory | None = None) -> AgentDirectory:
    """Build an ``AgentDirectory`` from the text of an agents file, or raise ``ConfigError``.

    With ``groups`` the directory is also checked against groups.toml
    (``check_agents_against_groups``).
    """
    problems: list[str] = []
    data = load_toml(text, path, problems)
    if data is None:
        raise ConfigError(problems)
    source = SourceMap(path, text)
    for key in unknown_keys(data, _TOP_KEYS):
        problems.append(f"{source.at(source.key('', key))}: unknown top-level field '{key}' (known: agents, trust, assignment)")
    agents = _parse_agent_tables(data.get("agents", {}), source, problems)
    trust = _parse_trust(data.get("trust", {}), source, problems)
    mode, group_modes = _parse_assignment(data.get("assignment", {}), source, problems)
    where = source.at(source.table("assignment.groups"))
    directory = AgentDirectory(agents, trust, mode, group_modes, path, where)
    if not problems and groups is not None:
        problems = check_agents_against_groups(directory, groups)
    if problems:
        raise ConfigError(problems)
    return directory


def _parse_agent_tables(table: Any, source: SourceMap, problems: list[str]) -> tuple[Agent, ...]:
    if not isinstance(table, dict):
        problems.append(f"{source.at(source.key('', 'agents'))}: agents must be tables like [agents.zhang-wei]")
        return ()
    agents = []
    for agent_id, body in table.items():
        where = source.at(source.table(f"agents.{agent_id}"))
        if not _KEBAB.match(agent_id):
            problems.append(f"{where}: agent id '{agent_id}' must be kebab-case like 'zhang-wei'")
        if not isinstance(body, dict):
            problems.append(f"{where}: [agents.{agent_id}] must be a table")
            continue
        agent = _agent(agent_id, body, source, problems)
        if agent is not None:
            agents.append(agent)
    _check_unique(agents, source, problems)
    return tuple(agents)


def _agent(agent_id: str, body: dict[str, Any], source: SourceMap, problems: list[str]) -> Agent | None:
    """One agent, or None after adding its problems."""
    table, before = f"agents.{agent_id}", len(problems)
    where = lambda key: f"{source.at(source.key(table, key))}: agent {agent_id}: "  # noqa: E731
    for key in unknown_keys(body, _AGENT_KEYS):
        problems.append(f"{where(key)}unknown field '{key}' (known: {', '.join(sorted(_AGENT_KEYS))})")
    for key in ("name", "addresses"):
        if key not in body:
            problems.append(f"{where(key)}needs {key} (name = \"张工\", addresses = [\"zhang@example.com\"])")
    addresses = _optional_list(body, "addresses", where, problems)
    if "addresses" in body and not addresses:
        problems.append(f"{where('addresses')}needs at least one address")
    if bad := [a for a in addresses if not _ADDRESS.match(a.strip())]:
        problems.append(f"{where('addresses')}not an address: {bad[0]!r}")
    member_of = _optional_list(body, "groups", where, problems)
    for key, allowed in _CHOICE_KEYS.items():
        if key in body and body[key] not in allowed:
            problems.append(f"{where(key)}{key} must be one of {', '.join(allowed)}, not {body[key]!r}")
    for key, kind in (("name", str), ("calendar", str), ("on_duty", bool)):
        if key in body and (reason := expect_type(body[key], kind, key)):
            problems.append(where(key) + reason)
        elif key != "on_duty" and key in body and not body[key].strip():
            problems.append(f"{where(key)}{key} must not be empty")
    if len(problems) > before:
        return None
    return Agent(
        agent_id=agent_id, name=body["name"].strip(), addresses=tuple(a.strip().lower() for a in addresses),
        location=source.at(source.table(table)), groups=member_of, role=body.get("role", "agent"),
        language=body.get("language", "zh-CN"), calendar=body.get("calendar"), on_duty=body.get("on_duty", True),
    )


def _optional_list(body: dict[str, Any], key: str, where: Callable[[str], str], problems: list[str]) -> tuple[str, ...]:
    """A list of strings if ``key`` is present (an empty list is allowed), else ()."""
    if key not in body or body[key] == []:
        return ()
    values, reason = string_list(body[key], key)
    if reason:
        problems.append(where(key) + reason)
    return values


def _check_unique(agents: list[Agent], source: SourceMap, problems: list[str]) -> None:
    """An address belongs to one agent; a name names one agent (``#assign 张工`` must be unambiguous)."""
    seen: dict[str, str] = {}
    for agent in agents:
        for key in (*agent.addresses, f"name:{_fold(agent.name)}"):
            if key in seen and seen[key] != agent.agent_id:
                what = f"name '{agent.name}'" if key.startswith("name:") else f"address {key}"
                problems.append(f"{agent.location}: agent {agent.agent_id}: {what} is already used by agent {seen[key]}")
            seen.setdefault(key, agent.agent_id)
    supervisors = [a for a in agents if a.role == "supervisor"]
    if supervisors and not any(a.on_duty for a in supervisors):
        line = source.table(f"agents.{supervisors[0].agent_id}")
        problems.append(f"{source.at(line)}: no supervisor is on duty; urgent and high tickets would notify nobody")


def _parse_trust(table: Any, source: SourceMap, problems: list[str]) -> TrustPolicy:
    line = source.at(source.table("trust"))
    if not isinstance(table, dict):
        problems.append(f"{line}: trust must be a table with authserv_ids = [...]")
        return TrustPolicy()
    for key in unknown_keys(table, {"authserv_ids", "domains"}):
        problems.append(f"{source.at(source.key('trust', key))}: unknown field '{key}' in [trust] (known: authserv_ids, domains)")
    ids, reason = string_list(table["authserv_ids"], "trust.authserv_ids") if table.get("authserv_ids") else ((), None)
    if reason:
        problems.append(f"{source.at(source.key('trust', 'authserv_ids'))}: {reason}")
    domains = []
    for domain, body in (table.get("domains") or {}).items():
        where = source.at(source.table(f"trust.domains.{domain}"))
        methods, reason = string_list(body.get("methods") if isinstance(body, dict) else None, "methods")
        extra = unknown_keys(body, {"methods"}) if isinstance(body, dict) else []
        try:
            if reason or extra:
                raise ValueError(reason or f"unknown field '{extra[0]}' (known: methods)")
            domains.append(DomainTrust(domain, methods))
        except ValueError as exc:
            problems.append(f"{where}: trust for {domain}: {exc} (methods are {', '.join(METHODS)})")
    if any(m in ("dkim", "spf") for d in domains for m in d.methods) and not ids:
        problems.append(f"{line}: dkim or spf is trusted but [trust] authserv_ids names no receiving server")
    return TrustPolicy(tuple(i.strip().lower() for i in ids), tuple(domains))


def _parse_assignment(table: Any, source: SourceMap, problems: list[str]) -> tuple[str, tuple[tuple[str, str], ...]]:
    if not isinstance(table, dict):
        problems.append(f"{source.at(source.table('assignment'))}: assignment must be a table with mode = \"round-robin\"")
        return MODES[0], ()
    for key in unknown_keys(table, {"mode", "groups"}):
        problems.append(f"{source.at(source.key('assignment', key))}: unknown field '{key}' in [assignment] (known: mode, groups)")
    entries = [("", "mode", table.get("mode", MODES[0]))]
    per_group = table.get("groups", {})
    entries += [(g, g, m) for g, m in per_group.items()] if isinstance(per_group, dict) else []
    for group_id, key, mode in entries:
        if mode not in MODES:
            line = source.key("assignment.groups" if group_id else "assignment", key)
            problems.append(f"{source.at(line)}: assignment mode must be one of {', '.join(MODES)}, not {mode!r}")
    return entries[0][2], tuple((g, m) for g, _, m in entries[1:])


# --- cross-checks ------------------------------------------------------------------------


def check_agents_against_groups(agents: AgentDirectory, groups: GroupDirectory) -> list[str]:
    """Problems between agents.toml and groups.toml: unknown groups, members or leads who are no
    agent or do not list the group, leads without the role lead or supervisor."""
    problems = []
    known = {g.group_id for g in groups.groups}
    hint = f"(groups.toml defines: {', '.join(sorted(known)) or 'none'})"
    for agent in agents.agents:
        for group_id in agent.groups:
            if group_id not in known:
                problems.append(f"{agent.location}: agent {agent.agent_id}: group '{group_id}' is not defined {hint}")
    for group_id, _ in agents.group_modes:
        if group_id not in known:
            problems.append(f"{agents.assignment_location}: [assignment.groups] names group '{group_id}', which is not defined {hint}")
    for group in groups.groups:
        for address, is_lead in [*((m, False) for m in group.members), *([(group.lead, True)] if group.lead else [])]:
            problems += _membership_problems(agents, group.group_id, group.location, address, is_lead)
    return problems


def _membership_problems(agents: AgentDirectory, group_id: str, where: str, address: str, is_lead: bool) -> list[str]:
    what = "lead" if is_lead else "member"
    agent = agents.by_address(address)
    if agent is None:
        return [f"{where}: group {group_id}: {what} {address} is not an agent in {agents.path or 'agents.toml'}"]
    problems = []
    if group_id not in agent.groups:
        problems.append(f"{agent.location}: agent {agent.agent_id}: is a {what} of {group_id} in groups.toml "
                        f"but groups = {list(agent.groups)} does not list it")
    if is_lead and agent.role == "agent":
        problems.append(f"{agent.location}: agent {agent.agent_id}: leads {group_id} in groups.toml, so role must be lead or supervisor")
    return problems


def check_agents_against_calendars(agents: AgentDirectory, calendar_ids: Collection[str]) -> list[str]:
    """Agents whose ``calendar`` is not a calendar of sla.toml."""
    return [
        f"{a.location}: agent {a.agent_id}: calendar '{a.calendar}' is not defined in sla.toml "
        f"(defines: {', '.join(sorted(calendar_ids)) or 'none'})"
        for a in agents.agents if a.calendar and a.calendar not in calendar_ids
    ]
