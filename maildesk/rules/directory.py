"""Support groups and the VIP list, built from the text of ``groups.toml``.

A group has a kebab-case id (``hardware-support``), a display name
(``硬件支持组``), a lead and members (addresses), and optionally the SLA policy
its tickets run on.  The VIP list holds addresses (``ceo@example.com``),
domains (``key-client.com``) and globs (``*@board.example.com``); a VIP's
mail is raised one priority level after the rules.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from typing import Any

from maildesk.errors import ConfigError
from maildesk.rules.tomlsource import SourceMap, expect_type, load_toml, string_list

_KEBAB = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_ADDRESS = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_GLOB_CHARS = frozenset("*?[")
_TOP_KEYS = frozenset({"groups", "vip"})
_GROUP_KEYS = frozenset({"name", "name_en", "lead", "members", "sla_policy", "description"})
_VIP_KEYS = frozenset({"senders"})


@dataclass(frozen=True)
class Group:
    group_id: str
    name: str
    location: str
    name_en: str = ""
    lead: str | None = None
    members: tuple[str, ...] = ()
    sla_policy: str | None = None
    description: str = ""

    def has_member(self, address: str) -> bool:
        wanted = address.lower()
        return wanted == (self.lead or "").lower() or wanted in (m.lower() for m in self.members)


@dataclass(frozen=True)
class VipEntry:
    """One entry of the VIP list: an address, a domain, or a glob on the address."""

    pattern: str
    kind: str  # "address" | "domain" | "glob"
    location: str

    def matches(self, address: str) -> bool:
        address = address.lower()
        if self.kind == "address":
            return address == self.pattern
        if self.kind == "domain":
            return address.rpartition("@")[2] == self.pattern
        return fnmatch.fnmatchcase(address, self.pattern)


@dataclass(frozen=True)
class GroupDirectory:
    groups: tuple[Group, ...] = ()
    vips: tuple[VipEntry, ...] = ()
    path: str = ""

    def get(self, group_id: str) -> Group | None:
        return next((g for g in self.groups if g.group_id == group_id), None)

    def groups_of(self, address: str) -> tuple[str, ...]:
        """Ids of the groups ``address`` leads or belongs to."""
        return tuple(g.group_id for g in self.groups if g.has_member(address))

    def vip_entry(self, address: str) -> VipEntry | None:
        """The first VIP entry matching ``address``, or None."""
        return next((v for v in self.vips if v.matches(address)), None)


def parse_groups(text: str, path: str) -> GroupDirectory:
    """Build a ``GroupDirectory`` from the text of a groups file, or raise ``ConfigError``."""
    problems: list[str] = []
    data = load_toml(text, path, problems)
    if data is None:
        raise ConfigError(problems)
    source = SourceMap(path, text)
    for key in data:
        if key not in _TOP_KEYS:
            problems.append(f"{source.at(source.key('', key))}: unknown top-level field '{key}' (known: groups, vip)")
    groups = _parse_group_table(data.get("groups", {}), source, problems)
    vips = _parse_vips(data.get("vip", {}), source, problems)
    if problems:
        raise ConfigError(problems)
    return GroupDirectory(groups=groups, vips=vips, path=path)


def _parse_group_table(table: Any, source: SourceMap, problems: list[str]) -> tuple[Group, ...]:
    if not isinstance(table, dict):
        problems.append(f"{source.at(source.key('', 'groups'))}: groups must be tables like [groups.hardware-support]")
        return ()
    groups = []
    for group_id, body in table.items():
        line = source.table(f"groups.{group_id}")
        before = len(problems)
        if not _KEBAB.match(group_id):
            problems.append(f"{source.at(line)}: group id '{group_id}' must be kebab-case like 'hardware-support'")
        if not isinstance(body, dict):
            problems.append(f"{source.at(line)}: [groups.{group_id}] must be a table")
            continue
        _check_group_fields(group_id, body, source, problems)
        if len(problems) == before:
            groups.append(Group(
                group_id=group_id, name=body["name"], location=source.at(line), name_en=body.get("name_en", ""),
                lead=body.get("lead"), members=tuple(body.get("members", ())), sla_policy=body.get("sla_policy"),
                description=body.get("description", ""),
            ))
    return tuple(groups)


def _check_group_fields(group_id: str, body: dict[str, Any], source: SourceMap, problems: list[str]) -> None:
    table = f"groups.{group_id}"
    where = lambda key: source.at(source.key(table, key))  # noqa: E731
    for key, value in body.items():
        if key not in _GROUP_KEYS:
            problems.append(f"{where(key)}: group {group_id}: unknown field '{key}' (known: {', '.join(sorted(_GROUP_KEYS))})")
        elif key == "members":
            members, reason = string_list(value, "members")
            bad = [m for m in members if not _ADDRESS.match(m)]
            if reason or bad:
                problems.append(f"{where(key)}: group {group_id}: {reason or f'not an address: {bad[0]!r}'}")
        elif key == "lead" and not (isinstance(value, str) and _ADDRESS.match(value)):
            problems.append(f"{where(key)}: group {group_id}: lead must be an address, not {value!r}")
        elif reason := expect_type(value, str, key):
            problems.append(f"{where(key)}: group {group_id}: {reason}")
    if "name" not in body:
        problems.append(f"{source.at(source.table(table))}: group {group_id}: needs a display name (name = \"硬件支持组\")")


def _parse_vips(table: Any, source: SourceMap, problems: list[str]) -> tuple[VipEntry, ...]:
    line = source.table("vip")
    if not isinstance(table, dict):
        problems.append(f"{source.at(line)}: vip must be a table with senders = [...]")
        return ()
    for key in table:
        if key not in _VIP_KEYS:
            problems.append(f"{source.at(source.key('vip', key))}: unknown field '{key}' in [vip] (known: senders)")
    if "senders" not in table:
        return ()
    senders, reason = string_list(table["senders"], "vip.senders")
    senders_line = source.key("vip", "senders")
    if reason:
        problems.append(f"{source.at(senders_line)}: {reason}")
        return ()
    return tuple(_vip_entry(s, source, senders_line, problems) for s in senders)


def _vip_entry(sender: str, source: SourceMap, near: int, problems: list[str]) -> VipEntry:
    location = source.at(source.string(sender, near))
    pattern = sender.strip().lower()
    if _GLOB_CHARS & set(pattern):
        return VipEntry(pattern, "glob", location)
    if "@" in pattern.removeprefix("@"):
        if not _ADDRESS.match(pattern):
            problems.append(f"{location}: VIP entry {sender!r} is not an address, a domain or a glob")
        return VipEntry(pattern, "address", location)
    if "." not in pattern or " " in pattern:
        problems.append(f"{location}: VIP entry {sender!r} is not an address, a domain or a glob")
    return VipEntry(pattern.removeprefix("@"), "domain", location)
