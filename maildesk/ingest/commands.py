"""Read the command lines at the top of an agent's mail (``#status resolved``, ``#优先级 紧急``).

Pure.  The block starts at the first non-blank line and ends at the first
non-blank line that is not a command; blank lines inside it are part of it.  A
command is ``#`` directly followed by a word (``# heading`` with a space is
Markdown, not a command).  Lines are read after NFKC, so full-width ``＃`` and
``ｓｔａｔｕｓ`` work, and names and values are case-insensitive.  A Chinese
name may be glued to its value (``#状态已解决``); ``:`` or ``=`` after the name
is allowed.

Values are made canonical here (``已解决`` → ``resolved``, ``TS…`` numbers
normalised); whether a name, group or ticket exists is for the runner, which
applies nothing when ``errors`` is not empty.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass

from maildesk.ingest.thread import extract_ticket_ref

_COMMAND = re.compile(r"^\s*#(?P<word>[^\W\d_][\w-]*)(?P<rest>.*)$")
_ADDRESS = re.compile(r"^<?([^\s@<>,;\"]+)@([^\s@<>,;\"]+\.[^\s@<>,;\"]+)>?$")
_LIST_SEPARATORS = re.compile(r"[\s,;、]+")

_ALIASES: dict[str, tuple[str, ...]] = {
    "status": ("状态", "狀態"),
    "priority": ("优先级", "優先級"),
    "assign": ("指派",),
    "group": ("转组", "轉組"),
    "note": ("备注", "備註"),
    "cc": ("抄送",),
    "merge": ("合并", "合併"),
    "kb": ("知识库", "知識庫"),
    "escalate": ("升级", "升級"),
}
_NAMES = {alias: name for name, aliases in _ALIASES.items() for alias in (name, *aliases)}
_GLUED = sorted((alias for alias in _NAMES if not alias.isascii()), key=len, reverse=True)

_CHOICES: dict[str, dict[str, str]] = {
    "status": {
        "resolved": "resolved", "已解决": "resolved", "解决": "resolved", "已处理": "resolved",
        "pending": "pending", "待用户": "pending", "等待用户": "pending", "挂起": "pending",
        "open": "open", "处理中": "open", "打开": "open",
    },
    "priority": {
        "urgent": "urgent", "紧急": "urgent", "high": "high", "高": "high",
        "medium": "medium", "中": "medium", "中等": "medium", "low": "low", "低": "low",
    },
}
_CHOICES_TEXT = {
    "status": "resolved, pending, open (已解决, 待用户, 处理中)",
    "priority": "urgent, high, medium, low (紧急, 高, 中, 低)",
}
_NEEDS = {"assign": "a person's name, id or address", "group": "a group name or id"}
SINGLE = frozenset({"status", "priority", "assign", "group", "escalate"})


@dataclass(frozen=True)
class Command:
    """One valid command: canonical English ``name`` and canonical ``argument``; ``line`` is 1-based."""

    name: str
    argument: str
    line: int
    raw: str


@dataclass(frozen=True)
class CommandError:
    """A command line that cannot be applied, and why, for the short answer to the agent."""

    line: int
    raw: str
    problem: str


@dataclass(frozen=True)
class CommandBlock:
    """The commands at the top of a mail, their errors, and the text without the command lines."""

    commands: tuple[Command, ...] = ()
    errors: tuple[CommandError, ...] = ()
    body: str = ""

    def first(self, name: str) -> Command | None:
        return next((c for c in self.commands if c.name == name), None)

    def all(self, name: str) -> tuple[Command, ...]:
        return tuple(c for c in self.commands if c.name == name)


def extract_commands(text: str) -> CommandBlock:
    """Split ``text`` into its leading command block and the rest (the body)."""
    lines = text.removeprefix("\ufeff").split("\n")
    commands: list[Command] = []
    errors: list[CommandError] = []
    end = 0
    for index, line in enumerate(lines):
        normal = unicodedata.normalize("NFKC", line)
        if not normal.strip():
            continue
        match = _COMMAND.match(normal)
        if match is None:
            break
        end = index + 1
        raw = line.strip()
        found, error = _read(match.group("word"), match.group("rest"), index + 1, raw)
        commands.extend(found)
        errors.extend([error] if error else [])
    if end == 0:
        return CommandBlock(body=text)
    body_start = next((i for i in range(end, len(lines)) if unicodedata.normalize("NFKC", lines[i]).strip()), len(lines))
    kept, conflicts = _deduplicate(commands)
    return CommandBlock(tuple(kept), tuple(sorted([*errors, *conflicts], key=lambda e: e.line)),
                        "\n".join(lines[body_start:]))


def _read(word: str, rest: str, line: int, raw: str) -> tuple[list[Command], CommandError | None]:
    """The commands of one line (``#cc`` and ``#merge`` may list several), or its error."""
    key = word.casefold()
    name = _NAMES.get(key)
    if name is None:
        glued = next((alias for alias in _GLUED if key.startswith(alias)), None)
        if glued is None:
            return [], CommandError(line, raw, f"unknown command #{word} (known: {', '.join(_ALIASES)})")
        name, rest = _NAMES[glued], word[len(glued):] + rest
    argument = re.sub(r"^\s*[:=]?\s*", "", rest).strip()
    try:
        values = _arguments(name, argument)
    except ValueError as problem:
        return [], CommandError(line, raw, str(problem))
    return [Command(name, value, line, raw) for value in values], None


def _arguments(name: str, argument: str) -> list[str]:
    """Canonical argument values of one command line; ``ValueError`` says what is wrong."""
    if name in _CHOICES:
        value = _CHOICES[name].get(argument.casefold())
        if value is None:
            got = f", got '{argument}'" if argument else ""
            raise ValueError(f"#{name} needs one of {_CHOICES_TEXT[name]}{got}")
        return [value]
    if name in _NEEDS:
        if not argument:
            raise ValueError(f"#{name} needs {_NEEDS[name]}")
        return [" ".join(argument.split())]
    if name == "cc":  # "Wang Fang <wang@example.com>" as pasted from a mail client: the bracketed part
        bracketed = re.findall(r"<([^<>]+)>", argument)
        return _list(" ".join(bracketed) or argument, _address, "#cc needs an e-mail address")
    if name == "merge":
        return _list(argument, extract_ticket_ref, "#merge needs a ticket number like TS20231025001")
    return [argument]  # note, kb, escalate: optional free text


def _list(argument: str, read: Callable[[str], str | None], needs: str) -> list[str]:
    """Each piece of a list argument read by ``read``; duplicates removed."""
    pieces = [p for p in _LIST_SEPARATORS.split(argument) if p]
    if not pieces:
        raise ValueError(needs)
    values = []
    for piece in pieces:
        value = read(piece)
        if value is None:
            raise ValueError(f"{needs}, got '{piece}'")
        values.append(value)
    return list(dict.fromkeys(values))


def _address(text: str) -> str | None:
    match = _ADDRESS.match(text)
    return f"{match.group(1)}@{match.group(2).lower()}" if match else None


def _deduplicate(commands: list[Command]) -> tuple[list[Command], list[CommandError]]:
    """Drop exact repeats; a second single-valued command with another value is an error."""
    kept: list[Command] = []
    errors: list[CommandError] = []
    for command in commands:
        same_name = [c for c in kept if c.name == command.name]
        if any(c.argument == command.argument for c in same_name) or (same_name and command.name in ("note", "kb")):
            continue
        if same_name and command.name in SINGLE:
            first = same_name[0]
            errors.append(CommandError(command.line, command.raw, (
                f"#{command.name} given twice with different values "
                f"(line {first.line}: '{first.argument}', line {command.line}: '{command.argument}')")))
            continue
        kept.append(command)
    return kept, errors
